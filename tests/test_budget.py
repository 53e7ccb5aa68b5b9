"""The day's budget (runs/budget.py): what counts toward today's spend, read from the store (so
it survives a kernel restart), and refusing a run, a sweep, a timeline or queued runs before
anything is stored or sent (the simulator's create requests are counted)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, time as clock, timedelta, timezone

import pytest
from PIL import Image

from framepack_widgets._environment import daily_budget
from framepack_widgets.client import AsyncClient
from framepack_widgets.errors import BudgetExceededError, FramepackError, InvalidInputError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Budget, Run, Runner, RunStage, RunStore, ownership
from framepack_widgets.runs.budget import budget_limit, counts_toward_spend, day_start
from framepack_widgets.simulator import Simulator
from framepack_widgets.sweeps import plan_sweep, start_sweep
from framepack_widgets.timeline import plan_timeline, start_timeline


def make_input(prompt: str = "the camera zooms in", duration: int = 10) -> FramepackInput:
    return FramepackInput(prompt, Image.new("RGB", (96, 64), (200, 40, 40)), duration=duration)


def stored(store: RunStore, stage: RunStage, *, task_id: str | None = None, duration: int = 10,
           backend: str = "simulator", created: datetime | None = None, owner: str | None = "someone") -> Run:
    run = Run.from_input(make_input(duration=duration), backend=backend)
    if created is not None:
        run.created_at = created
    run.update(stage=stage, task_id=task_id)
    store.save(run, owner=owner)
    return run


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=1) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator):
    c = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    yield c
    await c.close()


def creates(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "create")


# --------------------------------------------------------------------------- what counts
def test_what_counts_toward_todays_spend(store: RunStore) -> None:
    yesterday = datetime.fromtimestamp(day_start(), timezone.utc) - timedelta(minutes=1)
    counted = [
        stored(store, RunStage.COMPLETED, task_id="t1"),
        stored(store, RunStage.PROCESSING, task_id="t2"),
        stored(store, RunStage.TIMED_OUT, task_id="t3"),
        stored(store, RunStage.ERROR, task_id="t4"),  # e.g. the download failed: the task was made
        stored(store, RunStage.SUBMISSION_UNKNOWN),  # may have been charged
        stored(store, RunStage.SUBMITTING),  # on its way
        stored(store, RunStage.QUEUED),  # waiting for a free slot in a running kernel
        stored(store, RunStage.WAITING, owner=None, duration=20),  # a confirmed timeline's next segment
    ]
    not_counted = [
        stored(store, RunStage.FAILED, task_id="t5"),
        stored(store, RunStage.CANCELLED, task_id="t6"),
        stored(store, RunStage.ERROR),  # refused before PiAPI made a task
        stored(store, RunStage.QUEUED, owner=None),  # a stopped kernel's, never sent: waits for consent
        stored(store, RunStage.COMPLETED, task_id="t7", created=yesterday),
        stored(store, RunStage.COMPLETED, task_id="t8", backend="piapi"),  # another backend's budget
    ]
    budget = Budget(None, store, backend="simulator")
    assert budget.spent_today() == pytest.approx(0.3 * 7 + 0.6)
    assert budget.left() is None
    budget.check(1_000_000.0)  # no cap: nothing is refused
    assert Budget(None, store, backend="piapi").spent_today() == pytest.approx(0.3)
    # The same rule, run by run, as the widget's session figure uses it.
    assert all(counts_toward_spend(r.stage, r.task_id) for r in counted)
    assert not any(counts_toward_spend(r.stage, r.task_id) for r in not_counted[:3])


def test_a_budget_is_met_to_the_cent_and_the_refusal_says_what_is_left(store: RunStore) -> None:
    for task in ("a", "b"):
        stored(store, RunStage.COMPLETED, task_id=task)
    budget = Budget(0.90, store, backend="simulator")
    budget.check(0.30)  # $0.60 + $0.30 meets $0.90 exactly: allowed
    stored(store, RunStage.COMPLETED, task_id="c")
    assert budget.left() == 0.0
    heard: list[BudgetExceededError] = []
    budget.observe(heard.append)
    with pytest.raises(BudgetExceededError) as refused:
        budget.check(0.30)
    error = refused.value
    assert str(error).startswith("Today's budget: $0.00 of $0.90 left; this run costs $0.30. Nothing was sent.")
    assert (error.budget_usd, error.spent_usd, error.left_usd, error.cost_usd) == (0.90, 0.90, 0.0, 0.30)
    assert isinstance(error, InvalidInputError) and isinstance(error, FramepackError)
    assert heard == [error], "the widget hears every refusal, whoever asked"


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "five", True, [5]])
def test_a_bad_budget_is_refused_with_a_message(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="budget must be US dollars a day"):
        budget_limit(bad)


def test_framepack_budget_is_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRAMEPACK_BUDGET", raising=False)
    assert daily_budget() is None
    for text, value in [("5", 5.0), (" $2.50 ", 2.5), ("0", 0.0)]:
        monkeypatch.setenv("FRAMEPACK_BUDGET", text)
        assert daily_budget() == value
    for text in ("five", "-1", "nan", "inf"):
        monkeypatch.setenv("FRAMEPACK_BUDGET", text)
        with pytest.raises(InvalidInputError, match="FRAMEPACK_BUDGET must be US dollars a day"):
            daily_budget()


def test_the_day_starts_at_local_midnight() -> None:
    start = datetime.fromtimestamp(day_start())
    assert start.time() == clock(0, 0) and start <= datetime.now() < start + timedelta(days=1, hours=1)


# --------------------------------------------------------------------------- refused before anything is sent
async def test_two_quick_runs_cannot_pass_the_budget_together_and_a_restart_remembers(
        client: AsyncClient, store: RunStore, sim: Simulator) -> None:
    before = creates(sim)
    runner = Runner(client, store, budget=Budget(0.50, store, backend="simulator"))
    first = runner.start(make_input())
    with pytest.raises(BudgetExceededError, match=r"^Today's budget: \$0\.20 of \$0\.50 left; this run costs \$0\.30\."):
        runner.start(make_input("a second take"))  # the first is not even sent yet: it is on its way
    assert store.count() == 1, "a refused run is not stored"
    await first
    assert first.stage is RunStage.COMPLETED and creates(sim) == before + 1
    with pytest.raises(BudgetExceededError):
        first.rerun(prompt="again")  # rerun and extend go through the runner's start too
    assert creates(sim) == before + 1
    await runner.aclose()
    # A kernel restart: a new store object and budget on the same folder add the day up again.
    again = RunStore(store.folder)
    try:
        budget = Budget(0.50, again, backend="simulator")
        assert budget.spent_today() == pytest.approx(0.30)
        with pytest.raises(BudgetExceededError):
            Runner(client, again, budget=budget).start(make_input())
        assert again.count() == 1
    finally:
        again.close()


async def test_a_sweep_is_refused_whole_before_any_run_exists(client: AsyncClient, store: RunStore, sim: Simulator) -> None:
    before = creates(sim)
    runner = Runner(client, store, budget=Budget(0.50, store, backend="simulator"))
    sweep = start_sweep(runner, plan_sweep(make_input(), prompt=["zoom in", "pan left"]))
    with pytest.raises(BudgetExceededError, match=r"\$0\.50 of \$0\.50 left; this sweep \(2 runs\) costs \$0\.60"):
        sweep.confirm()
    assert sweep.state == "pending" and store.count() == 0 and creates(sim) == before
    await runner.aclose()


async def test_a_sweep_that_feeds_its_runs_keeps_their_price_aside(client: AsyncClient, store: RunStore) -> None:
    budget = Budget(0.90, store, backend="simulator")
    runner = Runner(client, store, budget=budget, max_concurrent=3)
    sweep = start_sweep(runner, plan_sweep(make_input(), prompt=["zoom in", "pan left"]), max_concurrent=1,
                        confirm=True)  # a stricter cap than the runner's: every run stored at once, sent one by one
    assert len(sweep.runs) == 2 and budget.left() == pytest.approx(0.30), "the second run's price counts before it is sent"
    extra = runner.start(make_input("one more"))  # $0.60 of the sweep + $0.30 meets $0.90
    with pytest.raises(BudgetExceededError):
        runner.start(make_input("too many"))
    await sweep
    await extra
    assert [r.stage for r in sweep.runs] == [RunStage.COMPLETED] * 2 and store.count() == 3
    assert budget.left() == 0.0
    await runner.aclose()


async def test_a_timeline_is_refused_before_its_segments_are_stored(client: AsyncClient, store: RunStore,
                                                                   sim: Simulator) -> None:
    before = creates(sim)
    runner = Runner(client, store, budget=Budget(0.50, store, backend="simulator"))
    plan = plan_timeline(make_input().start_image, [("zoom in", 10), ("pan left", 10)])
    timeline = start_timeline(runner, plan)
    with pytest.raises(BudgetExceededError, match=r"this timeline \(2 segments\) costs \$0\.60"):
        timeline.confirm()
    assert timeline.status == "pending" and store.count() == 0 and creates(sim) == before
    await runner.aclose()


async def test_queued_runs_are_sent_only_within_the_budget(client: AsyncClient, store: RunStore, sim: Simulator) -> None:
    # Two runs a stopped kernel stored but never sent, then a completed one today.
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    for prompt in ("left behind 1", "left behind 2"):
        left_behind = make_input(prompt)
        store.put_image(left_behind.start_image)
        store.save(Run.from_input(left_behind, backend="simulator"), owner=f"{ownership.HOST}:{proc.pid}:deadbeef")
    stored(store, RunStage.COMPLETED, task_id="done-today")
    before = creates(sim)
    runner = Runner(client, store, budget=Budget(0.80, store, backend="simulator"))
    runner.resume()
    assert len(runner.awaiting_consent) == 2
    assert runner.budget.spent_today() == pytest.approx(0.30), "never-sent runs wait for consent, uncounted"
    with pytest.raises(BudgetExceededError, match=r"\$0\.50 of \$0\.80 left; sending 2 queued runs costs \$0\.60"):
        runner.send()
    assert len(runner.awaiting_consent) == 2, "still waiting for the person's word"
    assert creates(sim) == before
    [sent] = runner.send(runner.awaiting_consent[:1])
    await sent
    assert sent.stage is RunStage.COMPLETED and creates(sim) == before + 1
    await runner.aclose()
