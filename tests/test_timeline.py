"""Timelines and Extend: plans and their price, stitching (frame counts at the joins), the
timeline on the real simulator (stored before anything is sent, each segment from the
previous one's last frame, a failed segment retried, cancel), a kernel killed mid-timeline,
`run.extend`, and the `framepack timeline` command.

The widget's side (messages, the panel's trait, chains on cards) is tests/test_widget_timeline.py.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from framepack_widgets.client import AsyncClient
from framepack_widgets.errors import InvalidInputError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, RunNotAttachedError, Runner, RunStage, RunStore
from framepack_widgets.simulator import Simulator
from framepack_widgets.simulator._faults import Fault
from framepack_widgets.sweeps import CostLimitError
from framepack_widgets.timeline import (
    plan_timeline,
    reopen_timelines,
    start_timeline,
    stitch,
    stitched_path,
)

FPS = 30


# --------------------------------------------------------------------------- helpers
def picture(color: tuple[int, int, int] = (200, 90, 40), size: tuple[int, int] = (192, 144)) -> Image.Image:
    """A small picture with some structure, so camera moves show in the frames."""
    img = Image.new("RGB", size, color)
    arr = np.asarray(img).copy()
    arr[size[1] // 3 : size[1] // 2, size[0] // 4 : size[0] // 2] = (20, 160, 220)
    return Image.fromarray(arr)


def make_clip(path: Path, frames: int, *, base: int, size: tuple[int, int] = (64, 48)) -> Path:
    """An H.264 clip whose frame i is a flat grey of level base + 4 i (read back by `levels`)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "0", "g": "30"}  # lossless: the levels read back exactly
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), base + 4 * i, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def levels(path: Path) -> list[int]:
    return [int(round(float(f.mean()))) for f in frames_of(path)]


def video_facts(path: Path) -> dict[str, Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return {"frames": count, "codec": stream.codec_context.name, "fps": float(stream.average_rate),
                "size": (stream.width, stream.height)}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --------------------------------------------------------------------------- plans and prices
def test_plan_prices_every_segment_and_puts_the_end_image_on_the_last() -> None:
    plan = plan_timeline(picture(), [("zoom in", 10), {"prompt": "pan left", "duration": 20}, "tilt up: now:30"],
                         negative_prompt="blurry", end_image=picture((10, 200, 10)))
    assert [(s.prompt, s.duration) for s in plan.segments] == [("zoom in", 10), ("pan left", 20), ("tilt up: now", 30)]
    assert plan.total_seconds == 60 and plan.total_cost_usd == pytest.approx(1.80)
    assert plan.describe() == "3 segments, 60 s in all, $1.80"
    assert [i.end_image is not None for i in plan.inputs] == [False, False, True]
    assert {i.negative_prompt for i in plan.inputs} == {"blurry"}


@pytest.mark.parametrize(
    ("segments", "needle"),
    [
        ([("zoom in", 10), ("pan left", 5)], "Timeline segment 2 ('pan left', 5 s)"),
        ([("zoom in", 10), ("   ", 10)], "Timeline segment 2"),
        ([("zoom in", 10), "pan left"], 'must be "PROMPT:SECONDS"'),
        ([("zoom in", 10, "extra")], "(prompt, duration) pair"),
        ([], "at least one segment"),
        ("zoom in:10", "list of (prompt, duration) pairs"),
        ([("zoom in", 10)] * 21, "max_segments=20"),
    ],
)
def test_bad_segments_are_refused_naming_them(segments: Any, needle: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        plan_timeline(picture(), segments)
    assert needle in str(err.value)


def test_max_cost_refuses_a_dearer_timeline_before_anything_exists(tmp_path: Path) -> None:
    with pytest.raises(CostLimitError) as err:
        plan_timeline(picture(), [("zoom in", 20), ("pan left", 20)], max_cost=1.0)
    assert "$1.20" in str(err.value) and "Nothing was sent" in str(err.value)
    plan = plan_timeline(picture(), [("zoom in", 20), ("pan left", 20)])
    with RunStore(tmp_path) as store:
        with pytest.raises(CostLimitError):
            start_timeline(Runner(_NoClient(), store), plan, confirm=True, max_cost=1.19)
        assert store.count() == 0


class _NoClient:
    """A client that must never be used."""

    is_simulator = True

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the client was used ({name})")


# --------------------------------------------------------------------------- stitching
def test_stitch_drops_the_repeated_frame_at_every_join(tmp_path: Path) -> None:
    clips = [make_clip(tmp_path / "a.mp4", 12, base=10), make_clip(tmp_path / "b.mp4", 15, base=80),
             make_clip(tmp_path / "c.mp4", 9, base=160)]
    result = stitch(clips, tmp_path / "out" / "all.mp4")
    assert result.segment_frames == (12, 15, 9) and result.frames == 12 + 15 + 9 - 2
    facts = video_facts(result.path)
    assert facts == {"frames": 34, "codec": "h264", "fps": 30.0, "size": (64, 48)}
    got = levels(result.path)
    a, b, c = (levels(clip) for clip in clips)
    # At each join one of the two frames goes: the later clip's first, or the earlier one's
    # last when its GOP is the cheaper to encode again (tests/test_stitch.py says which).
    ways = [a + b[1:] + c[1:], a[:-1] + b + c[1:], a + b[1:-1] + c, a[:-1] + b[:-1] + c]
    assert any(len(got) == len(w) and max(abs(g - x) for g, x in zip(got, w)) <= 2 for w in ways), (got, ways)
    assert not list((tmp_path / "out").glob("*.part.mp4")), "no temporary file left behind"
    assert result.path.stat().st_mode & 0o077 == 0, "private to its user, like the run store"


def test_stitch_scales_a_segment_of_another_size(tmp_path: Path) -> None:
    clips = [make_clip(tmp_path / "a.mp4", 6, base=10), make_clip(tmp_path / "b.mp4", 6, base=90, size=(96, 64))]
    result = stitch(clips, tmp_path / "out.mp4")
    assert (result.width, result.height) == (64, 48) and result.frames == 11
    assert video_facts(result.path)["size"] == (64, 48)


def test_stitched_path_is_keyed_by_the_videos_in_order(tmp_path: Path) -> None:
    one, two = stitched_path(tmp_path, ["a", "b"]), stitched_path(tmp_path, ["b", "a"])
    assert one == stitched_path(tmp_path, ["a", "b"]) and one != two
    assert one.parent == tmp_path / "stitched" and one.suffix == ".mp4"


# --------------------------------------------------------------------------- on the simulator
@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=2, long_side=160) as simulator:
        yield simulator


@pytest.fixture
async def runner(sim: Simulator, tmp_path: Path):
    store = RunStore(tmp_path / "store")
    async with AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02) as client:
        r = Runner(client, store)
        yield r
        await r.aclose()
    store.close()


def _start_image(run: Run) -> np.ndarray:
    return np.asarray(run.input.start_image.to_pil().convert("RGB"))


async def test_a_timeline_is_stored_whole_before_anything_is_sent_then_runs_segment_by_segment(
    sim: Simulator, runner: Runner
) -> None:
    sim.clear_requests()
    plan = plan_timeline(picture(), [("the camera zooms in", 10), ("it pans left", 10), ("it tilts up", 10)],
                         end_image=picture((30, 30, 200)))
    timeline = start_timeline(runner, plan)
    assert timeline.status == "pending" and runner.store.count() == 0, "nothing exists before it is confirmed"
    assert timeline.confirm() is timeline.confirm(), "a second confirm (a double click) changes nothing"
    stored = runner.store.list(limit=None)
    assert len(stored) == 3 and {r.stage for r in stored} == {RunStage.WAITING}
    assert sim.count("create") == 0, "every segment is stored before the first is sent"

    assert await timeline is timeline
    assert timeline.status == "done", timeline.error
    runs = timeline.runs
    assert [r.stage for r in runs] == [RunStage.COMPLETED] * 3 and sim.count("create") == 3
    assert [r.segment for r in runs] == [0, 1, 2] and {r.timeline_id for r in runs} == {timeline.timeline_id}
    assert runs[0].parent_id is None and [r.parent_id for r in runs[1:]] == [r.run_id for r in runs[:2]]
    assert [r.end_image_sha is not None for r in runs] == [False, False, True]
    for before, after in zip(runs, runs[1:]):  # each segment starts on the previous one's last frame
        last = np.asarray(before.last_frame().convert("RGB"))
        assert _start_image(after).shape == last.shape
        assert psnr(_start_image(after), last) > 35

    facts = video_facts(timeline.video_path)
    assert facts["frames"] == 3 * 10 * FPS - 2 and facts["fps"] == 30.0 and facts["codec"] == "h264"
    assert timeline.video_path.parent == runner.store.folder / "stitched"
    from framepack_widgets.video import read_settings

    settings = read_settings(timeline.video_path)  # the settings travel with the stitched video
    assert settings is not None and settings["kind"] == "timeline" and settings["timeline_id"] == timeline.timeline_id
    assert [p["run_id"] for p in settings["parts"]] == [r.run_id for r in runs]
    assert all(read_settings(r.video_path)["run_id"] == r.run_id for r in runs)  # and each segment's own


async def test_a_stitch_cut_short_is_made_again_on_reopen_and_one_in_progress_is_left_alone(
    sim: Simulator, runner: Runner
) -> None:
    """The part file of a stitch says which timeline it was: one nobody holds (its kernel was
    killed; tests/test_kills.py kills one) is removed and that timeline stitched again by
    `reopen_timelines`; one a live stitcher holds is left to it."""
    import os

    from framepack_widgets.timeline import TIMELINES
    from framepack_widgets.video import PartFile

    sim.clear_requests()
    timeline = await start_timeline(runner, plan_timeline(picture(), [("zoom in", 10), ("pan left", 10)]), confirm=True)
    assert timeline.status == "done" and timeline.video_path is not None
    target, timeline_id = timeline.video_path, timeline.timeline_id
    target.unlink()  # as if the kernel had died before renaming it into place
    TIMELINES.pop(timeline_id)
    old = time.time() - 60

    with PartFile(target) as live:  # another kernel is stitching it right now
        os.utime(live.path, (old, old))
        assert reopen_timelines(runner) == [] and live.path.exists()
    stale = PartFile(target).path  # what a killed stitcher leaves: its part file, unlocked
    stale.write_bytes(b"half a video")
    os.utime(stale, (old, old))
    other = stale.with_name(".0123456789abcdef.x1.part.mp4")  # a chain's, say: removed, nothing to stitch
    other.write_bytes(b"half another")
    os.utime(other, (old, old))

    [again] = reopen_timelines(runner)
    assert again.timeline_id == timeline_id and not stale.exists() and not other.exists()
    await again
    assert again.status == "done" and again.video_path == target and target.is_file()
    assert sim.count("create") == 2
    assert reopen_timelines(runner) == [], "stitched once"


async def test_a_failed_segment_stops_the_timeline_and_retry_sends_only_that_one(sim: Simulator, runner: Runner) -> None:
    sim.clear_requests()
    sim.inject(Fault("fail_task", endpoint="create", after=1, times=1, message="the model refused"))
    plan = plan_timeline(picture(), [("zoom in", 10), ("pan left", 10), ("tilt up", 10)])
    timeline = start_timeline(runner, plan, confirm=True)
    await timeline
    assert timeline.status == "failed" and "Segment 2 of 3 ended failed" in (timeline.error or "")
    assert [r.stage for r in timeline.runs] == [RunStage.COMPLETED, RunStage.FAILED, RunStage.WAITING]
    assert sim.count("create") == 2, "the segment after the failed one is not sent"
    assert timeline.can_retry(1) and not timeline.can_retry(2) and timeline.video_path is None
    failed = timeline.runs[1]

    timeline.retry()
    with pytest.raises(InvalidInputError):
        timeline.retry()  # running again: nothing to retry, nothing sent twice
    await timeline
    assert timeline.status == "done", timeline.error
    assert sim.count("create") == 4, "one more create for the retried segment, one for the last"
    retried = timeline.runs[1]
    assert retried.run_id != failed.run_id and runner.store.get(failed.run_id).stage is RunStage.FAILED
    assert retried.parent_id == timeline.runs[0].run_id and timeline.runs[2].parent_id == retried.run_id
    assert retried.input.start_image.sha256 == failed.input.start_image.sha256, "the same start image again"
    assert video_facts(timeline.video_path)["frames"] == 3 * 10 * FPS - 2


async def test_cancel_withdraws_the_waiting_segments_unsent(sim: Simulator, runner: Runner) -> None:
    sim.clear_requests()
    plan = plan_timeline(picture(), [("zoom in", 10), ("pan left", 10), ("tilt up", 10)])
    timeline = start_timeline(runner, plan, confirm=True)
    while timeline.runs[0].task_id is None:
        await asyncio.sleep(0.01)
    timeline.cancel()
    await timeline
    assert timeline.status == "cancelled"
    assert [r.stage for r in timeline.runs[1:]] == [RunStage.CANCELLED] * 2
    assert all(r.task_id is None for r in timeline.runs[1:]) and sim.count("create") == 1
    assert not reopen_timelines(runner), "a cancelled timeline is not picked up again"


async def test_a_timeline_whose_storing_was_cut_short_is_withdrawn_not_sent(sim: Simulator, runner: Runner) -> None:
    sim.clear_requests()
    plan = plan_timeline(picture(), [("zoom in", 10), ("pan left", 10), ("tilt up", 10)])
    # As if the kernel died while confirming: the last two segments stored, the first not yet.
    ids = ["seg0-never-stored", "seg1", "seg2"]
    for index in (2, 1):
        runner.hold(plan.inputs[index], timeline_id="timeline-cut", segment=index, parent_id=ids[index - 1],
                    run_id=ids[index])
    assert reopen_timelines(runner) == []
    assert {runner.store.get(i).stage for i in ids[1:]} == {RunStage.CANCELLED}
    await asyncio.sleep(0.1)
    assert sim.count("create") == 0


async def test_extend_starts_from_the_exact_last_frame_and_records_its_parent(sim: Simulator, runner: Runner) -> None:
    first = runner.start(FramepackInput("the camera zooms in", picture(), negative_prompt="blurry", duration=12))
    await first
    decoded = frames_of(first.video_path)  # decoded here independently
    first_frame, last = decoded[0], decoded[-1]
    second = first.extend(prompt="it pans left")
    assert second.parent_id == first.run_id and second.prompt == "it pans left"
    assert (second.negative_prompt, second.duration, second.end_image_sha) == ("blurry", 12, None)
    start = _start_image(second)
    assert start.shape == last.shape, "the full frame, not a thumbnail"
    # Sent as every image is (JPEG q90), so close to the last frame, not identical; far from the first.
    assert psnr(start, last) > 33 and psnr(start, last) > psnr(start, first_frame) + 6
    await second
    assert second.stage is RunStage.COMPLETED
    assert runner.store.get(second.run_id).parent_id == first.run_id

    stored = Run.from_dict(first.to_dict())  # a bare record: no runner to send anything
    with pytest.raises(RunNotAttachedError):
        stored.extend()
    unfinished = Run.from_dict({**first.to_dict(), "video_path": None, "stage": "processing"})
    with pytest.raises(FileNotFoundError):
        unfinished.extension_input()


# --------------------------------------------------------------------------- a kernel killed mid-timeline
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from PIL import Image
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import Runner, RunStage, RunStore
    from framepack_widgets.timeline import plan_timeline, start_timeline

    async def main(folder, base_url, key):
        store = RunStore(folder)
        async with AsyncClient(api_key=key, base_url=base_url) as client:
            runner = Runner(client, store)
            plan = plan_timeline(Image.new("RGB", (96, 64), (9, 99, 199)),
                                 [("camera zooms in", 10), ("camera pans left", 10), ("camera tilts up", 10)])
            timeline = start_timeline(runner, plan, confirm=True)
            def report(t):
                if len(t.runs) > 1 and t.runs[1].stage is RunStage.PROCESSING:
                    print("PROCESSING", t.timeline_id, t.runs[1].run_id, flush=True)
            timeline.observe(report)
            await timeline  # killed before this returns

    asyncio.run(main(*sys.argv[1:4]))
    """
)


async def test_a_kernel_killed_mid_timeline_resumes_it_without_paying_twice(tmp_path: Path) -> None:
    """A kernel runs a 3-segment timeline and is killed while segment 2 is processing at
    PiAPI (the simulator, in its own process); a new kernel resumes: segment 2 is re-attached
    by its task id, segment 3 follows from its last frame, and exactly three tasks are paid."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder, key = tmp_path / "store", "sim-key-for-timeline-kill-test"
    sim_log = (tmp_path / "sim.log").open("w")
    sim = subprocess.Popen(
        [sys.executable, "-m", "framepack_widgets.simulator", "--port", str(port), "--api-key", key,
         "--time-scale", "12", "--processing-seconds", "12"],
        stdout=sim_log, stderr=subprocess.STDOUT,
    )
    child = None
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in (tmp_path / "sim.log").read_text():
            assert time.monotonic() < deadline and sim.poll() is None, (tmp_path / "sim.log").read_text()
            await asyncio.sleep(0.05)
        base_url = f"http://127.0.0.1:{port}"
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), base_url, key], stdout=subprocess.PIPE, text=True)
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 120)
        assert line.startswith("PROCESSING"), line
        _, timeline_id, second_id = line.split()
        child.kill()  # the kernel dies mid-timeline
        child.wait()

        with RunStore(folder) as store:
            stages = {r.segment: r.stage for r in store.list(limit=None)}
            assert stages == {0: RunStage.COMPLETED, 1: RunStage.PROCESSING, 2: RunStage.WAITING}
            async with AsyncClient(api_key=key, base_url=base_url) as client:
                runner = Runner(client, store)
                resumed = runner.resume()
                assert [r.run_id for r in resumed] == [second_id]
                [timeline] = reopen_timelines(runner, resumed)
                assert timeline.timeline_id == timeline_id and timeline.status == "running"
                await asyncio.wait_for(timeline.wait(), 180)
                assert timeline.status == "done", timeline.error
                assert [r.stage for r in timeline.runs] == [RunStage.COMPLETED] * 3
                assert timeline.runs[1].run_id == second_id, "segment 2 was re-attached, not sent again"
                assert video_facts(timeline.video_path)["frames"] == 3 * 10 * FPS - 2
                info = await client.account_info()
                await runner.aclose()
            info = info.get("data", info)
            assert info["spent_in_usd"] == pytest.approx(0.90) and info["frozen_credits"] == 0, info
    finally:
        for proc in (child, sim):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        sim_log.close()


# --------------------------------------------------------------------------- framepack timeline
def _cli(argv: list[str]) -> tuple[int, str, str]:
    from framepack_widgets.cli._timeline import timeline_command

    out, err = io.StringIO(), io.StringIO()
    code = timeline_command(argv, stdin=io.StringIO(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_timeline_writes_one_stitched_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "start.png"
    picture(size=(160, 120)).save(image)
    code, out, err = _cli([str(image), "--segment", "the camera zooms in:10", "--segment", "pans left:10",
                           "--sim-time-scale", "200", "--yes", "-o", "film.mp4"])
    assert code == 0, err
    assert out.strip() == str(tmp_path / "film.mp4")
    assert "2 segments, 20 s in all, $0.60" in err and "simulator" in err
    assert video_facts(tmp_path / "film.mp4")["frames"] == 2 * 10 * FPS - 1


def test_cli_timeline_refuses_before_sending_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "start.png"
    picture().save(image)
    code, _, err = _cli([str(image), "--segment", "zoom in:10"])
    assert code == 2 and "--yes" in err
    code, _, err = _cli([str(image), "--segment", "zoom in", "--yes"])
    assert code == 2 and "PROMPT:SECONDS" in err
    code, _, err = _cli([str(image), "--segment", "zoom in:20", "--segment", "pan:20", "--max-cost", "1", "--yes"])
    assert code == 2 and "max_cost" in err
    with RunStore() as store:
        assert store.count() == 0
