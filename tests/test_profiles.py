"""The widget runner, the widget and `framepack generate` on both simulator profiles.

"realistic" (the default) answers as PiAPI documents Framepack: no percent, `output: null`
until the video exists, empty logs. "rich" adds a percent and log lines. Everything a
person uses must work on both, and the money rule must hold whatever the create's answer
looks like. One simulator per profile serves the whole module.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from framepack_widgets import cli
from framepack_widgets.client import AsyncClient
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Runner, RunStage, RunStore
from framepack_widgets.simulator import Fault, Simulator
from framepack_widgets.task import TaskStatus
from framepack_widgets.widget import FramepackWidget
from framepack_widgets.widget._protocol import run_status

pytest.importorskip("av")


@pytest.fixture(scope="module", params=["realistic", "rich"])
def sim(request: pytest.FixtureRequest):
    # 20 s in the queue at 40x: half a second to see a task pending even on a busy machine.
    with Simulator(time_scale=40, pending_seconds=20, long_side=160, profile=request.param) as simulator:
        yield simulator


@pytest.fixture
def store(tmp_path: Path):
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
async def client(sim: Simulator):
    sim.clear_faults()
    async with AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.05) as c:
        yield c
    sim.clear_faults()


def make_input(prompt: str = "camera zooms in slowly", color=(200, 40, 40)) -> FramepackInput:
    from PIL import Image

    return FramepackInput(prompt, Image.new("RGB", (96, 64), color), duration=10)


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_a_run_completes_and_shows_what_the_profile_reports(sim: Simulator, client, store) -> None:
    runner = Runner(client, store)
    run = runner.start(make_input())
    await asyncio.wait_for(run.wait(), 60)
    assert run.stage is RunStage.COMPLETED, (run.error, run.hint)
    assert run.video_path is not None and run.video_path.read_bytes()[4:8] == b"ftyp"
    assert run.status is TaskStatus.COMPLETED and run.status_word == "completed"
    assert RunStage.PENDING in [e.stage for e in run.history]
    percents = [e.percent for e in run.history if e.stage is RunStage.PROCESSING]
    if sim.profile == "realistic":
        assert all(p is None for p in percents) and run.logs == ()
    await runner.aclose()


async def test_an_unknown_status_word_is_shown_and_polled_on(sim: Simulator, client, store) -> None:
    slow = Simulator(time_scale=10, long_side=160, profile=sim.profile,
                     faults=[Fault.status_words({"processing": "generating"})]).start()
    try:
        async with AsyncClient(slow.api_key, base_url=slow.base_url, poll=0.05) as slow_client:
            runner = Runner(slow_client, store)
            run = runner.start(make_input())
            await _until(lambda: run.status_word == "generating")
            status = run_status(run)
            assert run.status is TaskStatus.UNKNOWN and status["api_status"] == "generating"
            assert "generating" in status["hint"] and status["running"]
            await asyncio.wait_for(run.wait(), 60)
            assert run.stage is RunStage.COMPLETED and run.status_word == "completed"
            assert "generating" not in (run_status(run)["hint"] or "")
            await runner.aclose()
    finally:
        slow.stop()


@pytest.mark.parametrize("fault, stage", [
    (Fault.envelope(500, "create", handled=True), RunStage.SUBMISSION_UNKNOWN),  # made, named nowhere
    (Fault.envelope(10002, "create", message="queue is busy"), RunStage.SUBMISSION_UNKNOWN),
    (Fault.envelope(500, "create", handled=True, with_data=True), RunStage.COMPLETED),  # made and named
    (Fault.bare_reply(), RunStage.COMPLETED),
    (Fault.envelope(402, "create", message="insufficient credits"), RunStage.ERROR),  # refused: nothing made
])
async def test_a_paid_run_never_says_nothing_was_charged_while_a_task_exists(
    sim: Simulator, client, store, fault: Fault, stage: RunStage
) -> None:
    before = set(sim.tasks)
    sim.inject(fault)
    runner = Runner(client, store)
    run = runner.start(make_input("camera pans left"))
    await asyncio.wait_for(run.wait(), 60)
    made = set(sim.tasks) - before
    assert run.stage is stage, (run.error, run.hint)
    if made:  # a task exists at the "API": the run follows it, or says it may exist
        assert "Nothing was charged" not in (run.hint or "")
        assert run.task_id in made or run.stage is RunStage.SUBMISSION_UNKNOWN
    else:
        assert run.stage is RunStage.ERROR and (run.hint or "").startswith("Nothing was charged")
        assert "Top up" in run.error
    await runner.aclose()


async def test_cancel_says_what_the_api_answered(sim: Simulator, store) -> None:
    slow = Simulator(time_scale=1, pending_seconds=30, processing_seconds=60, long_side=160,
                     profile=sim.profile).start()
    try:
        async with AsyncClient(slow.api_key, base_url=slow.base_url, poll=0.05) as client:
            runner = Runner(client, store)
            pending = runner.start(make_input())
            await _until(lambda: pending.task_id is not None and pending.stage is RunStage.PENDING)
            runner.cancel(pending)
            await asyncio.wait_for(pending.wait(), 30)
            assert pending.stage is RunStage.CANCELLED and "Cancelled at PiAPI" in pending.hint
            assert slow.task_status(pending.task_id) == "cancelled"
            await runner.aclose()
        fast = Simulator(time_scale=1, pending_seconds=0, processing_seconds=60, long_side=160,
                         profile=sim.profile).start()
        try:
            async with AsyncClient(fast.api_key, base_url=fast.base_url, poll=0.05) as client:
                runner = Runner(client, store)
                running = runner.start(make_input("camera pans right"))
                await _until(lambda: running.stage is RunStage.PROCESSING)
                runner.cancel(running)
                await asyncio.wait_for(running.wait(), 30)
                assert running.stage is RunStage.CANCELLED
                assert "only pending tasks can be cancelled" in running.hint  # the API's own words
                assert "may still run and be billed" in running.hint
                assert fast.task_status(running.task_id) == "processing"
                await runner.aclose()
        finally:
            fast.stop()
    finally:
        slow.stop()


async def test_the_widget_generates_on_both_profiles(sim: Simulator, client, store) -> None:
    widget = FramepackWidget(client, store=store)
    try:
        from PIL import Image

        widget.start_image = Image.new("RGB", (96, 64), (30, 160, 90))
        widget.prompt = "the camera slowly zooms in"
        run = widget.generate()
        await asyncio.wait_for(run.wait(), 60)
        assert run.stage is RunStage.COMPLETED, (run.error, run.hint)
        assert run.video_path is not None and run.video_path.exists()
    finally:
        await widget.runner.aclose()
        widget.close()


def test_framepack_generate_on_both_profiles(sim: Simulator, tmp_path: Path, monkeypatch, capsys) -> None:
    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (96, 64), (40, 90, 200)).save(photo)
    monkeypatch.setenv("PIAPI_API_KEY", sim.api_key)
    monkeypatch.setenv("PIAPI_BASE_URL", sim.base_url)
    out = tmp_path / "out.mp4"
    assert cli.main(["generate", str(photo), "--prompt", "zoom in", "-o", str(out)]) == cli.EXIT_OK
    assert out.read_bytes()[4:8] == b"ftyp"
    err = capsys.readouterr().err
    assert "completed" in err
    if sim.profile == "realistic":  # no percent is reported, so none is shown
        assert "%" not in err
