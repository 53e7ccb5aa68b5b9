"""A kernel killed (`kill -9`) at the worst moments: nothing lost, nothing sent twice.

Kills during the create request and while processing are in test_store.py and test_runs.py;
SIGTERM during a sweep is in test_cli.py. Here: during the video download, and during store
writes. The simulator runs in this process and outlives the killed child, as PiAPI would.
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
