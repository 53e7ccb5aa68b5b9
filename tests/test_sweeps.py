"""Sweeps: the grid, its price, the cost cap, confirmation and the concurrency cap.

Unit tests use a fake runner (no network); the integration tests run real sweeps through
Runner + RunStore + AsyncClient against the simulator over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import pytest

from framepack_widgets.errors import InvalidInputError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.sweeps import (
    CostLimitError,
    Sweep,
    SweepPlan,
    plan_sweep,
    start_sweep,
)
from framepack_widgets.cli._sweep import sweep_command
from framepack_widgets.runs import RunStage

IMG = "https://example.com/start.png"  # URLs pass through untouched: no decoding in unit tests


@pytest.fixture
def base() -> FramepackInput:
    return FramepackInput("a lighthouse, camera zooms in", IMG)


# ----------------------------------------------------------------------- the plan


def test_grid_is_the_product_in_order(base) -> None:
    plan = plan_sweep(base, prompt=["a", "b", "c"], duration=[10, 20])
    assert isinstance(plan, SweepPlan)
    assert plan.count == 6
    assert [(i.prompt, i.duration) for i in plan.inputs] == [
        ("a", 10), ("a", 20), ("b", 10), ("b", 20), ("c", 10), ("c", 20),
    ]
    assert plan.total_cost_usd == pytest.approx(3 * (0.3 + 0.6))
    assert plan.describe() == "6 runs (3 prompts × 2 durations), $0.30–$0.60 each, $2.70 in all"
    assert all(i.start_image == base.start_image for i in plan.inputs)


def test_uniform_cost_description_and_repeats(base) -> None:
    plan = plan_sweep(base, prompt=["a", "b", "c"], repeats=2)
    assert plan.count == 6
    assert [i.prompt for i in plan.inputs] == ["a", "a", "b", "b", "c", "c"]
    assert plan.describe() == "6 runs (3 prompts × 2 takes) × $0.30 = $1.80"
    assert plan_sweep(base, prompt="only").describe() == "1 run × $0.30 = $0.30"
    assert plan_sweep(base).count == 1  # nothing varied: the base input once


def test_negative_prompts_and_end_images_vary(base) -> None:
    plan = plan_sweep(
        base,
        negative_prompt=["", "blurry"],
        end_image=[None, "https://example.com/end.png"],
    )
    assert plan.count == 4
    assert [(i.negative_prompt, i.end_image is not None) for i in plan.inputs] == [
        ("", False), ("", True), ("blurry", False), ("blurry", True),
    ]
    d = plan.to_dict()
    assert d["count"] == 4 and d["axes"] == {"negative_prompt": 2, "end_image": 2}
    assert d["entries"][1]["end_image"] == plan.inputs[1].end_image.sha256


def test_bad_entries_are_refused_naming_the_entry(base) -> None:
    with pytest.raises(InvalidInputError, match=r"Sweep entry 2 .*duration=5"):
        plan_sweep(base, duration=[10, 5])
    with pytest.raises(InvalidInputError, match="prompt"):
        plan_sweep(base, prompt=["fine", "   "])
    with pytest.raises(InvalidInputError, match="no runs"):
        plan_sweep(base, prompt=[])
    with pytest.raises(InvalidInputError, match="repeats"):
        plan_sweep(base, repeats=0)
    with pytest.raises(InvalidInputError, match="max_runs"):
        plan_sweep(base, prompt=[str(i) for i in range(11)], duration=[10, 20], repeats=5, max_runs=100)


def test_cost_cap_refuses_with_the_figures(base) -> None:
    with pytest.raises(CostLimitError) as info:
        plan_sweep(base, prompt=["a", "b", "c"], duration=[30], max_cost=2.0)
    assert info.value.total_cost_usd == pytest.approx(2.70)
    assert info.value.max_cost_usd == 2.0
    assert "$2.70" in str(info.value) and "$2.00" in str(info.value) and "Nothing was sent" in str(info.value)
    assert isinstance(info.value, InvalidInputError)
    # At the cap exactly is allowed.
    assert plan_sweep(base, prompt=["a", "b", "c"], duration=[30], max_cost=2.7).count == 3
    with pytest.raises(InvalidInputError, match="max_cost"):
        plan_sweep(base, max_cost=-1)


# ----------------------------------------------------------------------- fake runner


class FakeRun:
    def __init__(self, runner: "FakeRunner", input: FramepackInput, sweep_id: str | None) -> None:
        self.run_id = uuid.uuid4().hex
        self.input = input
        self.prompt = input.prompt
        self.sweep_id = sweep_id
        self.stage = RunStage.QUEUED
        self._done = asyncio.Event()
        self.runner = runner
        self.observers: list[Any] = []

    def observe(self, callback: Any) -> None:
        self.observers.append(callback)

    def done(self) -> bool:
        return self._done.is_set()

    def finish(self, stage: str = "completed") -> None:
        if not self.done():
            self.stage = RunStage(stage)
            self.runner.in_flight -= 1
            self._done.set()
            for callback in self.observers:
                callback(self)

    def __await__(self):
        async def wait():
            await self._done.wait()
            return self

        return wait().__await__()


class FakeRunner:
    """Starts runs without limiting them; each finishes after `steps` loop turns (or when told)."""

    backend = "simulator"
    max_concurrent = None  # no cap of its own: the sweep's cap is the one that counts

    def __init__(self, *, auto: bool = True, steps: int = 3) -> None:
        self.started: list[FakeRun] = []
        self.cancelled: list[FakeRun] = []
        self.in_flight = 0
        self.max_seen = 0
        self.auto = auto
        self.steps = steps

    def start(self, input: FramepackInput, *, sweep_id: str | None = None) -> FakeRun:
        asyncio.get_running_loop()
        run = FakeRun(self, input, sweep_id)
        self.started.append(run)
        self.in_flight += 1
        self.max_seen = max(self.max_seen, self.in_flight)
        if self.auto:
            asyncio.get_running_loop().create_task(self._finish_later(run))
        return run

    async def _finish_later(self, run: FakeRun) -> None:
        for _ in range(self.steps):
            await asyncio.sleep(0)
        run.finish()

    def cancel(self, run: FakeRun) -> None:
        self.cancelled.append(run)
        run.finish("cancelled")


async def test_nothing_starts_without_confirmation(base) -> None:
    runner = FakeRunner()
    plan = plan_sweep(base, prompt=["a", "b", "c"])
    sweep = start_sweep(runner, plan, confirm=False)
    await asyncio.sleep(0.01)
    assert sweep.state == "pending" and not sweep.confirmed and runner.started == [] and sweep.runs == []
    assert sweep.describe().startswith("3 runs × $0.30 = $0.90") and "simulator" in sweep.describe()
    with pytest.raises(InvalidInputError, match="confirm"):
        await sweep
    sweep.confirm()
    sweep.confirm()  # a double click never starts it twice
    runs = await sweep
    assert len(runner.started) == 3 and runs == sweep.runs
    assert [r.prompt for r in runs] == ["a", "b", "c"]
    assert {r.sweep_id for r in runs} == {sweep.sweep_id}
    assert sweep.state == "done" and sweep.done()
    assert sweep.summary()["progress"] == {"completed": 3}


async def test_cost_cap_at_start_sends_nothing(base) -> None:
    runner = FakeRunner()
    plan = plan_sweep(base, prompt=["a", "b", "c"], duration=[30])
    with pytest.raises(CostLimitError):
        start_sweep(runner, plan, confirm=True, max_cost=1.0)
    assert runner.started == []


@pytest.mark.parametrize("cap", [1, 2, 3])
async def test_concurrency_never_exceeds_the_cap(base, cap: int) -> None:
    runner = FakeRunner(steps=5)
    plan = plan_sweep(base, prompt=[f"p{i}" for i in range(7)])
    sweep = start_sweep(runner, plan, confirm=True, max_concurrent=cap)
    runs = await sweep
    assert len(runs) == 7 and all(r.done() for r in runs)
    assert runner.max_seen == cap
    assert [r.prompt for r in runs] == [f"p{i}" for i in range(7)]


async def test_a_runner_with_its_own_cap_gets_every_run_at_once(base) -> None:
    runner = FakeRunner(auto=False)
    runner.max_concurrent = 2  # the runner enforces this itself (a real Runner does)
    plan = plan_sweep(base, prompt=["a", "b", "c", "d"])
    sweep = start_sweep(runner, plan, confirm=True, max_concurrent=3)
    # Every run is handed over (and, with a real Runner, stored) the moment it is confirmed.
    assert len(sweep.runs) == 4 and len(runner.started) == 4
    for run in runner.started:
        run.finish()
    assert len(await sweep) == 4 and sweep.state == "done"


async def test_cancel_stops_unstarted_runs_and_cancels_running_ones(base) -> None:
    runner = FakeRunner(auto=False)
    plan = plan_sweep(base, prompt=[f"p{i}" for i in range(5)])
    sweep = start_sweep(runner, plan, confirm=True, max_concurrent=2)
    await asyncio.sleep(0.01)
    assert len(runner.started) == 2
    runner.started[0].finish()
    await asyncio.sleep(0.01)
    assert len(runner.started) == 3
    seen: list[str] = []
    sweep.observe(lambda s: seen.append(s.state))
    sweep.cancel()
    runs = await sweep
    assert len(runner.started) == 3 and len(runs) == 3  # p3 and p4 were never started
    assert sorted(r.prompt for r in runner.cancelled) == ["p1", "p2"]
    assert sweep.state == "cancelled" and "cancelled" in seen and sweep.done()


async def test_cancel_before_confirm(base) -> None:
    runner = FakeRunner()
    sweep = start_sweep(runner, plan_sweep(base, prompt=["a", "b"]), confirm=False)
    sweep.cancel()
    assert sweep.state == "cancelled" and sweep.done()
    with pytest.raises(InvalidInputError, match="cancelled"):
        sweep.confirm()
    assert runner.started == []


def test_confirm_needs_a_running_loop(base) -> None:
    sweep = Sweep(FakeRunner(), plan_sweep(base, prompt=["a"]))
    with pytest.raises(RuntimeError):
        sweep.confirm()
    assert sweep.state == "pending"


# ----------------------------------------------------------------------- the command line


def png_file(path: Path, color=(30, 120, 200)) -> Path:
    from PIL import Image

    Image.new("RGB", (96, 64), color).save(path)
    return path


class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_cli_refuses_over_the_cap_and_without_yes_off_a_terminal(tmp_path: Path) -> None:
    err = io.StringIO()
    code = sweep_command(
        [IMG, "--prompt", "a", "--prompt", "b", "--duration", "30", "--max-cost", "1"],
        stdin=FakeStdin("", tty=False), stdout=io.StringIO(), stderr=err,
    )
    assert code == 2 and "$1.80" in err.getvalue() and "max_cost" in err.getvalue()

    err = io.StringIO()
    code = sweep_command([IMG, "--prompt", "a"], stdin=FakeStdin("", tty=False), stdout=io.StringIO(), stderr=err)
    assert code == 2 and "--yes" in err.getvalue() and "simulator" in err.getvalue()

    err = io.StringIO()
    code = sweep_command([IMG, "--prompt", "a"], stdin=FakeStdin("n\n", tty=True), stdout=io.StringIO(), stderr=err)
    assert code == 2 and "nothing was sent" in err.getvalue()

    err = io.StringIO()
    code = sweep_command([IMG, "--prompt", "a", "--duration", "7", "--yes"], stdout=io.StringIO(), stderr=err)
    assert code == 2 and "10" in err.getvalue()


# ----------------------------------------------------------------------- against the simulator


@pytest.fixture
def simulator():
    from framepack_widgets.simulator import Simulator

    with Simulator(time_scale=50, pending_seconds=0.5, processing_seconds=1.0) as sim:
        yield sim


@pytest.mark.slow
async def test_three_prompt_sweep_end_to_end(simulator, tmp_path: Path) -> None:
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import RunStage, Runner
    from framepack_widgets.runs import RunStore

    store = RunStore(tmp_path / "store")
    async with AsyncClient(simulator.api_key, base_url=simulator.base_url) as client:
        runner = Runner(client, store, max_concurrent=2)
        base = FramepackInput("a harbour at dawn, camera zooms in", png_file(tmp_path / "start.png"))
        plan = plan_sweep(base, prompt=["a harbour, camera zooms in", "a harbour, camera pans left", "a harbour, static"])
        sweep = start_sweep(runner, plan, confirm=False)
        assert store.count() == 0 and not [r for r in simulator.requests if r.endpoint == "create"]
        sweep.confirm()
        # Every run is in the store before any create request could be answered.
        assert store.count(sweep_id=sweep.sweep_id) == 3
        runs = await sweep
        await runner.aclose()
    assert [r.stage for r in runs] == [RunStage.COMPLETED] * 3
    assert [r.prompt for r in runs] == [i.prompt for i in plan.inputs]
    assert all(r.video_path is not None and Path(r.video_path).is_file() for r in runs)
    creates = [r for r in simulator.requests if r.endpoint == "create"]
    assert len(creates) == 3  # nothing sent twice
    assert {r.run_id for r in store.list(sweep_id=sweep.sweep_id)} == {r.run_id for r in runs}

    # The finished sweep exports as one comparison video, labelled by what differs.
    from framepack_widgets.compare import labels_for
    from framepack_widgets.export import export_run_card, export_run_comparison, read_run_card

    assert labels_for(runs) == ["“camera zooms in”", "“camera pans left”", "“static”"]
    stored = list(reversed(store.list(sweep_id=sweep.sweep_id)))  # read back, as after a restart
    assert labels_for(stored) == labels_for(runs)
    out = export_run_comparison(stored, tmp_path / "sweep.mp4", height=120)
    assert out.is_file() and out.stat().st_size > 1000

    # A real run's card: simulator flagged, task id and timings in, no key anywhere.
    card_path = export_run_card(runs[0], tmp_path / "cards")
    card = read_run_card(card_path)
    assert card["backend"] == "simulator" and card["synthetic"] is True
    assert card["task_id"] == runs[0].task_id and card["stage"] == "completed"
    assert card["sweep_id"] == sweep.sweep_id and card["wall_time"] > 0
    assert card["params"]["start_image"]["sha256"] == base.start_image.sha256
    assert simulator.api_key.encode() not in card_path.read_bytes()

    # The ETA learns from these three finished runs.
    est = store.estimate(10, backend="simulator")
    assert est.basis == "history" and est.n == 3
    assert store.estimate(10, backend="piapi").basis == "default"

    # After a restart the sweep is found again by its id (nothing is sent).
    from framepack_widgets.sweeps import reopen_sweep

    again = reopen_sweep(Runner(client, store), sweep.sweep_id)
    assert [r.run_id for r in await again] == [r.run_id for r in runs] and again.state == "done"
    assert len([r for r in simulator.requests if r.endpoint == "create"]) == 3
    store.close()


async def test_a_sweep_stricter_than_its_runner_stores_every_run_then_sends_them_one_by_one(
    simulator, tmp_path: Path
) -> None:
    """A sweep cap below the runner's: every run is stored when the sweep is confirmed,
    and the sweep's cap still holds (its runs share slots inside the runner); cancelling
    drops the queued ones before they are sent."""
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import RunStage, Runner, RunStore

    store = RunStore(tmp_path / "store")
    simulator.clear_requests()
    async with AsyncClient(simulator.api_key, base_url=simulator.base_url) as client:
        at_piapi: set[str] = set()
        most = [0]

        def note(run) -> None:
            if run.stage in (RunStage.SUBMITTING, RunStage.PENDING, RunStage.PROCESSING, RunStage.DOWNLOADING):
                at_piapi.add(run.run_id)
            else:
                at_piapi.discard(run.run_id)
            most[0] = max(most[0], len(at_piapi))

        runner = Runner(client, store, max_concurrent=3, on_change=note)
        base = FramepackInput("a harbour", png_file(tmp_path / "start.png"))
        sweep = start_sweep(runner, plan_sweep(base, prompt=["one", "two", "three", "four"]), confirm=True,
                            max_concurrent=1)
        assert store.count(sweep_id=sweep.sweep_id) == 4, "every run is stored before the first is sent"
        assert sweep.progress() == {"queued": 4}
        runs = await sweep
        assert [r.stage for r in runs] == [RunStage.COMPLETED] * 4
        assert [r.prompt for r in runs] == ["one", "two", "three", "four"]
        assert most[0] == 1 and simulator.count("create") == 4
        assert [r.task_id for r in sorted(runs, key=lambda r: r.submitted_at)] == [r.task_id for r in runs]

        again = start_sweep(runner, plan_sweep(base, prompt=["five", "six", "seven"]), confirm=True, max_concurrent=1)
        while not any(r.task_id for r in again.runs):
            await asyncio.sleep(0.01)
        again.cancel()
        runs = await again
        await runner.aclose()
    assert [r.stage for r in runs] == [RunStage.CANCELLED] * 3
    assert [r.error for r in runs[1:]] == ["Cancelled before it was sent."] * 2 and simulator.count("create") == 5
    store.close()


@pytest.mark.slow
def test_cli_sweep_writes_every_video(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FRAMEPACK_SIM_TIME_SCALE", "200")
    image = png_file(tmp_path / "start.png")
    out, err = io.StringIO(), io.StringIO()
    code = sweep_command(
        [str(image), "--prompt", "camera zooms in", "--prompt", "camera pans left", "--yes", "-o", str(tmp_path / "videos")],
        stdout=out, stderr=err,
    )
    assert code == 0, err.getvalue()
    written = [Path(line) for line in out.getvalue().split()]
    assert len(written) == 2 and all(p.is_file() and p.parent == tmp_path / "videos" for p in written)
    assert "simulator" in err.getvalue() and "2 runs × $0.30 = $0.60" in err.getvalue()


CHILD = r"""
import asyncio, sys
from framepack_widgets.client import AsyncClient
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Runner
from framepack_widgets.runs import RunStore
from framepack_widgets.sweeps import plan_sweep, start_sweep

base_url, key, folder, image = sys.argv[1:5]

async def main():
    store = RunStore(folder)
    async with AsyncClient(key, base_url=base_url) as client:
        def on_change(run):
            if run.task_id and run.stage.value in ("pending", "processing"):
                print("SENT", run.run_id, flush=True)
        runner = Runner(client, store, on_change=on_change, max_concurrent=1)
        base = FramepackInput("a harbour, camera zooms in", image)
        plan = plan_sweep(base, prompt=["a harbour, camera zooms in", "a harbour, camera pans left", "a harbour, static"])
        sweep = start_sweep(runner, plan, confirm=True)
        print("SWEEP", sweep.sweep_id, flush=True)
        await sweep

asyncio.run(main())
"""


@pytest.mark.slow
async def test_kernel_killed_mid_sweep_resumes_all_three_without_paying_twice(tmp_path: Path) -> None:
    """Kill the process driving a 3-prompt sweep while its first task runs; a new Runner on the
    same store follows the first and, once the person says "Send", sends the other two."""
    import subprocess
    import sys

    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import RunStage, Runner
    from framepack_widgets.simulator import Simulator
    from framepack_widgets.runs import RunStore
    from framepack_widgets.sweeps import reopen_sweep

    folder = tmp_path / "store"
    image = png_file(tmp_path / "start.png")
    with Simulator(time_scale=1, pending_seconds=0.5, processing_seconds=1.5) as sim:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, sim.base_url, sim.api_key, str(folder), str(image)],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            lines = []
            while not any(line.startswith("SENT") for line in lines):
                line = await asyncio.to_thread(child.stdout.readline)
                assert line, "the child exited before sending its first run"
                lines.append(line)
        finally:
            child.kill()  # like a kernel dying: no cleanup runs
            child.wait()
        sweep_id = next(line.split()[1] for line in lines if line.startswith("SWEEP"))

        store = RunStore(folder)
        assert store.count(sweep_id=sweep_id) == 3
        async with AsyncClient(sim.api_key, base_url=sim.base_url) as client:
            runner = Runner(client, store)
            resumed = runner.resume()
            assert len(resumed) == 3
            assert len(runner.awaiting_consent) == 2  # never sent: they wait for the person's word
            await asyncio.sleep(0.1)
            assert len([r for r in sim.requests if r.endpoint == "create"]) == 1
            assert len(runner.send()) == 2  # "Send"
            sweep = reopen_sweep(runner, sweep_id)
            runs = await sweep
            await runner.aclose()
        assert [r.stage for r in runs] == [RunStage.COMPLETED] * 3
        assert len({r.task_id for r in runs}) == 3
        creates = [r for r in sim.requests if r.endpoint == "create"]
        assert len(creates) == 3  # one per run: nothing paid twice
        store.close()


@pytest.mark.slow
async def test_a_failed_or_unknown_run_does_not_stop_the_sweep(tmp_path: Path) -> None:
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.runs import RunStage, Runner
    from framepack_widgets.simulator import Fault, Simulator
    from framepack_widgets.runs import RunStore

    faults = [Fault.fail_task("GPU out of memory", after=1), Fault.drop_after_body("create", after=2)]
    with Simulator(time_scale=50, pending_seconds=0.5, processing_seconds=1.0, faults=faults) as sim:
        store = RunStore(tmp_path / "store")
        async with AsyncClient(sim.api_key, base_url=sim.base_url) as client:
            runner = Runner(client, store, max_concurrent=1)
            base = FramepackInput("a field", png_file(tmp_path / "start.png"))
            sweep = start_sweep(runner, plan_sweep(base, prompt=["one", "two", "three"]), confirm=False)
            seen: list[dict] = []
            sweep.observe(lambda s: seen.append(s.progress()))
            sweep.confirm()
            runs = await sweep
            await runner.aclose()
        assert [r.stage for r in runs] == [RunStage.COMPLETED, RunStage.FAILED, RunStage.SUBMISSION_UNKNOWN]
        assert "GPU out of memory" in (runs[1].error or "")
        assert sweep.state == "done" and sweep.progress() == {"completed": 1, "failed": 1, "submission_unknown": 1}
        assert len([r for r in sim.requests if r.endpoint == "create"]) == 3  # the unknown one was not resent
        # Observers heard the runs move, not just the sweep start and end.
        assert {"completed": 1, "queued": 2} in seen or {"completed": 1, "pending": 1, "queued": 1} in seen
        store.close()


@pytest.mark.slow
def test_cli_interrupted_cancels_unsent_runs(tmp_path: Path) -> None:
    """Ctrl-C mid-sweep: runs never sent are marked cancelled, so nothing sends (and bills) them later."""
    import os
    import signal
    import subprocess
    import sys

    from framepack_widgets.runs import RunStage
    from framepack_widgets.runs import RunStore

    image = png_file(tmp_path / "start.png")
    env = {**os.environ, "FRAMEPACK_HOME": str(tmp_path / "home"), "FRAMEPACK_SIM_TIME_SCALE": "1"}
    code = "import sys; from framepack_widgets.cli import main; sys.exit(main(['sweep', *sys.argv[1:]]))"
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(image), "--prompt", "a", "--prompt", "b", "--prompt", "c",
         "--max-concurrent", "1", "--yes", "-o", str(tmp_path / "out")],
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
    )
    try:
        for line in child.stderr:
            if "] pending" in line:
                break
        child.send_signal(signal.SIGINT)
        rest = child.stderr.read()
        assert child.wait(timeout=60) == 130
    finally:
        if child.poll() is None:
            child.kill()
    assert "2 run(s) not yet sent were cancelled" in rest
    with RunStore(tmp_path / "home") as store:
        stages = sorted(r.stage.value for r in store.list(limit=None))
    assert stages.count("cancelled") == 2 and RunStage.QUEUED.value not in stages


# ----------------------------------------------------------------------- image sweeps


def _jpeg_file(folder: Path, name: str, color: tuple[int, int, int]) -> Path:
    from PIL import Image

    path = folder / name
    Image.new("RGB", (96, 64), color).save(path, "JPEG")
    return path


def test_an_image_sweep_runs_once_per_image_named_after_its_file(base, tmp_path: Path) -> None:
    lake, beach = _jpeg_file(tmp_path, "lake.jpg", (0, 90, 200)), _jpeg_file(tmp_path, "beach.jpg", (230, 200, 120))
    plan = plan_sweep(base, start_image=[lake, str(beach), "https://example.com/img/forest.png?token=x"])
    assert plan.count == 3 and plan.axes == {"start_image": 3}
    assert [i.start_image.name for i in plan.inputs] == ["lake.jpg", "beach.jpg", "forest.png"]
    assert [i.prompt for i in plan.inputs] == [base.prompt] * 3
    assert plan.inputs[0].start_image.to_params()["name"] == "lake.jpg", "the name travels with the run's params"
    assert plan.describe() == "3 runs × $0.30 = $0.90 · start images: lake.jpg, beach.jpg, forest.png"
    assert [e["start_image_name"] for e in plan.to_dict()["entries"]] == ["lake.jpg", "beach.jpg", "forest.png"]


def test_images_combine_with_other_axes_and_loop_ends_each_run_on_its_own_image(base, tmp_path: Path) -> None:
    lake, beach = _jpeg_file(tmp_path, "lake.jpg", (0, 90, 200)), _jpeg_file(tmp_path, "beach.jpg", (230, 200, 120))
    plan = plan_sweep(base, start_image=[lake, beach], prompt=["zoom in", "pan left"], loop=True)
    assert plan.count == 4
    assert [(i.start_image.name, i.prompt) for i in plan.inputs] == [
        ("lake.jpg", "zoom in"), ("lake.jpg", "pan left"), ("beach.jpg", "zoom in"), ("beach.jpg", "pan left")]
    assert all(i.end_image == i.start_image for i in plan.inputs), "Loop: each run ends on its own start image"
    assert plan.describe().startswith("4 runs (2 start images × 2 prompts)")
    # Loop without an image axis loops on the base image; a varied end image wins over Loop.
    assert all(i.end_image == base.start_image for i in plan_sweep(base, prompt=["a", "b"], loop=True).inputs)
    ends = plan_sweep(base, start_image=[lake, beach], end_image=[None], loop=True)
    assert all(i.end_image is None for i in ends.inputs)


def test_every_image_is_checked_before_anything_is_planned(base, tmp_path: Path) -> None:
    lake = _jpeg_file(tmp_path, "lake.jpg", (0, 90, 200))
    with pytest.raises(InvalidInputError, match=r"Start image 2 .*no such file"):
        plan_sweep(base, start_image=[lake, tmp_path / "missing.jpg"])
    with pytest.raises(InvalidInputError, match=r"Start image 2 is required"):
        plan_sweep(base, start_image=[lake, None])
    with pytest.raises(InvalidInputError, match="start_image=\\[\\] gives no runs"):
        plan_sweep(base, start_image=[])
    # The run count is checked first: a typo does not decode a hundred images to say so.
    with pytest.raises(InvalidInputError, match="more than max_runs"):
        plan_sweep(base, start_image=[tmp_path / "never-read.jpg"] * 3, prompt=["a", "b"], max_runs=5)


async def test_an_image_sweep_through_the_runner_stores_each_image_and_its_name(tmp_path: Path) -> None:
    from framepack_widgets.client import AsyncClient
    from framepack_widgets.compare import labels_for
    from framepack_widgets.runs import Runner, RunStore
    from framepack_widgets.simulator import Simulator

    lake, beach = _jpeg_file(tmp_path, "lake.jpg", (0, 90, 200)), _jpeg_file(tmp_path, "beach.jpg", (230, 200, 120))
    with Simulator(time_scale=200, long_side=96) as sim:
        client = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
        store = RunStore(tmp_path / "store")
        runner = Runner(client, store)
        base = FramepackInput("the camera zooms in", lake)
        sweep = start_sweep(runner, plan_sweep(base, start_image=[lake, beach]), confirm=True)
        runs = await sweep
        assert [r.stage for r in runs] == [RunStage.COMPLETED] * 2
        again = [store.get(r.run_id) for r in runs]  # read back from the store: the names are kept
        assert [r.params["start_image"]["name"] for r in again] == ["lake.jpg", "beach.jpg"]
        assert [r.input.start_image.name for r in again] == ["lake.jpg", "beach.jpg"]
        assert labels_for(again) == ["lake.jpg", "beach.jpg"]
        await runner.aclose()
        await client.close()
        store.close()
