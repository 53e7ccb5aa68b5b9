"""A kernel killed (`kill -9`) at the worst moments: nothing lost, nothing sent twice.

Kills during the create request and while processing are in test_store.py and test_runs.py;
SIGTERM during a sweep is in test_cli.py. Here: during the video download, during store
writes, during a sweep held back by its own `max_concurrent`, and during stitching. The
simulator runs in this process and outlives the killed child, as PiAPI would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from framepack_widgets.client import AsyncClient
from framepack_widgets.runs import Runner, RunStage, RunStore
from framepack_widgets.simulator import Fault, Simulator

DOWNLOADING_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from PIL import Image
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Runner, RunStage, RunStore

    async def main(folder, base_url, key):
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            run = Runner(client, RunStore(folder)).start(
                FramepackInput("camera zooms in", Image.new("RGB", (96, 64), (9, 99, 199)), duration=10))
            def report(r):
                if r.stage is RunStage.DOWNLOADING:
                    print("DOWNLOADING", r.run_id, flush=True)
            run.observe(report)
            await run  # killed before this returns

    asyncio.run(main(*sys.argv[1:4]))
    """
)


async def test_killed_while_downloading_the_video_resumes_and_downloads_again(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    with Simulator(time_scale=40) as sim:
        sim.inject(Fault.slow(30.0, "download"))  # the download hangs: the kernel dies in it
        child = subprocess.Popen(
            [sys.executable, "-c", DOWNLOADING_CHILD, str(folder), sim.base_url, sim.api_key],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)  # type: ignore[union-attr]
            assert line.startswith("DOWNLOADING"), line
            while sim.count("download") == 0:  # the download request is in flight
                await asyncio.sleep(0.01)
        finally:
            child.kill()
            child.wait()
        run_id = line.split()[1]
        sim.clear_faults()
        with RunStore(folder) as store:
            assert store.get(run_id).stage is RunStage.DOWNLOADING
            assert list(store.videos_dir.iterdir()) == []  # no half video kept
            async with AsyncClient(api_key=sim.api_key, base_url=sim.base_url) as client:
                [run] = Runner(client, store).resume()
                await asyncio.wait_for(run.wait(), 60)
            assert run.stage is RunStage.COMPLETED and run.video_path is not None
            assert run.video_path.read_bytes()[4:8] == b"ftyp"
        assert sim.count("create") == 1  # the task was paid for once


WRITER_CHILD = textwrap.dedent(
    """
    import sys
    from PIL import Image
    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Run, RunStage, RunStore
    from framepack_widgets.task import TaskStatus

    store = RunStore(sys.argv[1])
    base = FramepackInput("write", Image.new("RGB", (64, 48), (1, 2, 3)))
    store.put_image(base.start_image)
    print("READY", flush=True)
    i = 0
    while True:  # killed somewhere in here, most likely inside a write transaction
        run = Run.from_input(base.replace(prompt=f"write {i}"))
        store.save(run)
        run.update(stage=RunStage.PENDING, task_id=f"t{i}", status=TaskStatus.PENDING, logs=("x" * 2000,) * 20)
        store.save(run)
        i += 1
    """
)


def test_killed_in_the_middle_of_store_writes_leaves_a_sound_store(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    for round_ in range(3):
        child = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, str(folder)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().startswith("READY")
        time.sleep(0.3 + 0.1 * round_)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with RunStore(folder) as store:
        assert store.integrity_check() == "ok"
        runs = store.list(limit=None)
        assert len(runs) > 10
        for run in runs:  # every run is whole: its row and its history agree
            stages = [e.stage for e in run.history]
            assert stages[-1] is run.stage and stages[0] is RunStage.QUEUED, (run.run_id, stages)
            if run.stage is RunStage.PENDING:
                assert run.task_id == f"t{run.prompt.split()[1]}" and len(run.logs) == 20
        stored_ids = {r.run_id for r in runs}
        assert len(stored_ids) == len(runs)


SWEEPING_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from PIL import Image
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.runs import Runner, RunStore
    from framepack_widgets.sweeps import plan_sweep, start_sweep

    async def main(folder, base_url, key):
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            def report(run):
                if run.task_id:
                    print("SENT", run.run_id, flush=True)
            runner = Runner(client, RunStore(folder), on_change=report, max_concurrent=3)
            base = FramepackInput("a harbour", Image.new("RGB", (96, 64), (9, 99, 199)), duration=10)
            plan = plan_sweep(base, prompt=[f"a harbour, take {k}" for k in range(6)])
            sweep = start_sweep(runner, plan, confirm=True, max_concurrent=1)  # stricter than the runner's 3
            print("SWEEP", sweep.sweep_id, flush=True)
            await sweep  # killed before this returns

    asyncio.run(main(*sys.argv[1:4]))
    """
)


async def test_killed_mid_sweep_held_back_by_its_own_cap_loses_no_run_and_sends_none_unasked(tmp_path: Path) -> None:
    """A sweep of 6 with max_concurrent=1 (below the runner's 3): every run is stored when
    it is confirmed, so after a kill -9 the 5 never sent come back queued (Send / Discard)."""
    from framepack_widgets import FramepackWidget

    folder = tmp_path / "store"
    with Simulator(time_scale=1, pending_seconds=30, processing_seconds=30) as sim:  # the first task outlives the child
        child = subprocess.Popen([sys.executable, "-c", SWEEPING_CHILD, str(folder), sim.base_url, sim.api_key],
                                 stdout=subprocess.PIPE, text=True)
        try:
            lines: list[str] = []
            while not any(line.startswith("SENT") for line in lines):
                line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)  # type: ignore[union-attr]
                assert line, "the child exited before sending its first run"
                lines.append(line)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        sweep_id = next(line.split()[1] for line in lines if line.startswith("SWEEP"))
        assert sim.count("create") == 1
        with RunStore(folder) as store:
            stored = store.list(limit=None, sweep_id=sweep_id)
            assert len(stored) == 6, "every confirmed run of the sweep is in the store"
            assert sorted(r.stage.value for r in stored).count("queued") == 5
            async with AsyncClient(api_key=sim.api_key, base_url=sim.base_url) as client:
                w = FramepackWidget(client, store=store)  # a new kernel opens the widget: resume()
                try:
                    assert w._queued["count"] == 5 and "Send or discard" in w._queued["text"]
                    assert len(w.runner.awaiting_consent) == 5
                    await asyncio.sleep(0.2)
                    assert sim.count("create") == 1, "nothing is sent before the person says so"
                    w.discard_queued()
                    assert w._queued == {} and sim.count("create") == 1
                    stages = sorted(r.stage.value for r in store.list(limit=None, sweep_id=sweep_id))
                    assert stages.count("cancelled") == 5 and "queued" not in stages
                finally:
                    await w.runner.aclose()
                    w.close()


STITCHING_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from PIL import Image
    import framepack_widgets.timeline._timeline as timeline_module
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import Runner, RunStore
    from framepack_widgets.timeline import plan_timeline, start_timeline

    real_stitch = timeline_module.stitch

    def stalled_stitch(paths, target, *, should_stop, settings):
        def stop():  # asked a few frames in, with the part file open: the kernel "hangs" there
            print("STITCHING", flush=True)
            time.sleep(3600)
            return False
        return real_stitch(paths, target, should_stop=stop, settings=settings)

    timeline_module.stitch = stalled_stitch

    async def main(folder, base_url, key):
        async with AsyncClient(api_key=key, base_url=base_url, poll=0.02) as client:
            plan = plan_timeline(Image.new("RGB", (192, 144), (200, 90, 40)), [("zoom in", 10), ("pan left", 10)])
            timeline = start_timeline(Runner(client, RunStore(folder)), plan, confirm=True)
            print("TIMELINE", timeline.timeline_id, flush=True)
            await timeline  # killed before this returns

    asyncio.run(main(*sys.argv[1:4]))
    """
)


async def test_killed_while_stitching_the_timeline_is_stitched_on_reopen(tmp_path: Path) -> None:
    """Every segment completed, the kernel killed mid-stitch: the next widget on the store
    removes the part file it left and makes the timeline's video (nothing is sent again)."""
    from framepack_widgets import FramepackWidget
    from framepack_widgets.video import PART_SUFFIX

    folder = tmp_path / "store"
    with Simulator(time_scale=200, long_side=160) as sim:
        child = subprocess.Popen([sys.executable, "-c", STITCHING_CHILD, str(folder), sim.base_url, sim.api_key],
                                 stdout=subprocess.PIPE, text=True)
        try:
            lines: list[str] = []
            while not any(line.startswith("STITCHING") for line in lines):
                line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 120)  # type: ignore[union-attr]
                assert line, "the child exited before stitching"
                lines.append(line)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        timeline_id = next(line.split()[1] for line in lines if line.startswith("TIMELINE"))
        stitched = folder / "stitched"
        [part] = [p for p in stitched.iterdir() if p.name.endswith(PART_SUFFIX)]
        assert not [p for p in stitched.iterdir() if not p.name.endswith(PART_SUFFIX)], "no stitched video yet"
        os.utime(part, (time.time() - 60, time.time() - 60))  # the next kernel opens later than a second
        with RunStore(folder) as store:
            assert sorted(r.stage.value for r in store.list(limit=None)) == ["completed", "completed"]
            async with AsyncClient(api_key=sim.api_key, base_url=sim.base_url, poll=0.02) as client:
                w = FramepackWidget(client, store=store)
                try:
                    timeline = w._timelines.shown
                    assert timeline is not None and timeline.timeline_id == timeline_id
                    await asyncio.wait_for(timeline.wait(), 120)
                    assert timeline.status == "done" and w._timeline_info["has_video"]
                    assert timeline.video_path is not None and timeline.video_path.parent == stitched
                    assert timeline.video_path.read_bytes()[4:8] == b"ftyp"
                    assert sorted(p.name for p in stitched.iterdir()) == [timeline.video_path.name], "the part went"
                finally:
                    await w.runner.aclose()
                    w.close()
        assert sim.count("create") == 2  # nothing sent again


RENDERING_CHILD = textwrap.dedent(
    """
    import sys, time
    from PIL import Image
    from framepack_widgets.client import Client
    from framepack_widgets.inputs import FramepackInput
    from framepack_widgets.simulator import Simulator

    with Simulator(state_dir=sys.argv[1], time_scale=1, long_side=1280, render_workers=1) as sim:
        with Client(sim.api_key, base_url=sim.base_url) as client:
            client.create_task(FramepackInput("a long render", Image.new("RGB", (192, 144), (9, 99, 199)), duration=30))
        print("RENDERING", flush=True)
        time.sleep(3600)  # killed while the clip renders
    """
)


def test_a_simulator_killed_mid_render_leaves_a_part_file_its_next_start_removes(tmp_path: Path) -> None:
    """The simulator's renders hold no lock, so its part files are told stale by age: a new
    simulator over the state folder removes those older than any render takes, and leaves
    young ones (another simulator's render in progress) alone."""
    state = tmp_path / "sim-state"
    child = subprocess.Popen([sys.executable, "-c", RENDERING_CHILD, str(state)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().startswith("RENDERING")
        parts: list[Path] = []
        while not parts:  # the render has begun writing its part file
            parts = [p for p in (state / "files").iterdir() if p.name.endswith(".part.mp4")]
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    [stale] = parts
    old = time.time() - 3600
    os.utime(stale, (old, old))  # the next start comes after any render would have ended
    image_part = state / "images" / "0123abcd.x1y2z3.part"  # an input image cut off mid-write
    image_part.write_bytes(b"half an image")
    os.utime(image_part, (old, old))
    young = state / "files" / "feedface.a1b2c3.part.mp4"  # another simulator's render, in progress
    young.write_bytes(b"being written")
    with Simulator(state_dir=state, time_scale=50):
        assert not stale.exists() and not image_part.exists()
        assert young.exists()
