"""The widget's spend and budget, its notebook's own history, and what its exports and notices say.

- `FramepackWidget(budget=...)` (or FRAMEPACK_BUDGET) refuses a Generate, `generate()`, a
  sweep or queued runs past the day's budget before anything is sent (the simulator's creates
  are counted); the refusal shows in the inputs' error line; the header's figures follow.
- A fresh widget in another notebook opens "Ready" on its own inputs, with that notebook's
  (empty) history and every run of the store one toggle away.
- Export and Share tell their button how it went, naming the file without its folder; the
  notice at the top never shows a local folder.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from framepack_widgets import FramepackWidget
from framepack_widgets.client import AsyncClient
from framepack_widgets.errors import BudgetExceededError, InvalidInputError
from framepack_widgets.inputs import FramepackInput
from framepack_widgets.runs import Run, RunStage, RunStore
from framepack_widgets.simulator import Simulator
from test_widget import attach, jpeg, msg, wait_for

LESSON = "/srv/class/notebooks/teaching_demo.ipynb"
QUICKSTART = "/srv/class/notebooks/quickstart.ipynb"


@pytest.fixture(scope="module")
def sim():
    with Simulator(time_scale=200, render_workers=1) as simulator:
        yield simulator


@pytest.fixture
def store(tmp_path: Path):
    s = RunStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
async def client(sim: Simulator):
    c = AsyncClient(sim.api_key, base_url=sim.base_url, poll=0.02)
    yield c
    await c.close()


@pytest.fixture
async def widgets():
    made: list[FramepackWidget] = []
    yield made
    for w in made:
        await w.runner.aclose()
        w.close()


def creates(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if r.endpoint == "create")


def open_widget(widgets: list, *args, **kwargs) -> FramepackWidget:
    w = FramepackWidget(*args, **kwargs)
    widgets.append(w)
    w.start_image = jpeg()
    w.prompt = "a red square, the camera slowly zooms in"
    return w


# --------------------------------------------------------------------------- the day's budget
async def test_a_run_past_the_budget_is_refused_before_it_is_sent(client, store, sim, widgets) -> None:
    w = open_widget(widgets, client, store=store, budget=0.50)
    rec = attach(w)
    assert w._spend == {"today": 0.0, "budget": 0.5}
    before = creates(sim)
    msg(w, {"type": "generate", "request_id": "r1"})
    first = w.runs[-1]
    await first
    assert first.stage is RunStage.COMPLETED and creates(sim) == before + 1
    assert w.session_cost == 0.3 and w._spend == {"today": 0.3, "budget": 0.5}
    # The button: refused with the numbers, shown under the inputs, and nothing sent.
    w.prompt = "a second take"
    msg(w, {"type": "generate", "request_id": "r2"})
    (error, _), = rec.of("error")
    expected = "Today's budget: $0.20 of $0.50 left; this run costs $0.30."
    assert error["request_id"] == "r2" and error["message"].startswith(expected)
    assert w._input_error.startswith(expected)
    # Python: the same refusal as a package error carrying the numbers.
    with pytest.raises(BudgetExceededError) as refused:
        w.generate()
    assert (refused.value.left_usd, refused.value.cost_usd, refused.value.budget_usd) == (0.2, 0.3, 0.5)
    # A sweep, from Python and from its panel's button: refused whole.
    sweep = w.sweep(prompt=["zoom in", "pan left"])
    msg(w, {"type": "sweep", "action": "confirm", "sweep_id": sweep.sweep_id})
    assert rec.of("error")[-1][0]["message"].startswith("Today's budget: $0.20 of $0.50 left; this sweep (2 runs)")
    assert sweep.state == "pending"
    with pytest.raises(BudgetExceededError):
        w.sweep(prompt=["zoom in", "pan left"], confirm=True)
    with pytest.raises(BudgetExceededError):
        first.rerun(prompt="once more")
    assert creates(sim) == before + 1 and len(w.store) == 1, "nothing past the budget was stored or sent"
    assert w.budget.left() == pytest.approx(0.2)
    # A new widget on the store (a kernel restart) adds the day up again from the store.
    again = FramepackWidget(client, store=store, budget=0.50)
    widgets.append(again)
    assert again._spend == {"today": 0.3, "budget": 0.5} and again.session_cost == 0.0


async def test_framepack_budget_sets_the_budget_and_a_bad_one_is_refused(client, store, widgets,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEPACK_BUDGET", "lots")
    with pytest.raises(InvalidInputError, match="FRAMEPACK_BUDGET must be US dollars a day"):
        FramepackWidget(client, store=store)
    with pytest.raises(InvalidInputError, match="budget must be US dollars a day"):
        FramepackWidget(client, store=store, budget=-1)
    monkeypatch.setenv("FRAMEPACK_BUDGET", "2.5")
    w = open_widget(widgets, client, store=store)
    assert w.budget.limit_usd == 2.5 and w._spend == {"today": 0.0, "budget": 2.5}
    assert open_widget(widgets, client, store=store, budget=1).budget.limit_usd == 1.0, "the argument wins"
    monkeypatch.delenv("FRAMEPACK_BUDGET")
    free = open_widget(widgets, client, store=store)
    assert free.budget.limit_usd is None and free._spend == {"today": 0.0, "budget": None}


async def test_queued_runs_past_the_budget_stay_queued_and_the_banner_says_why(client, store, sim, widgets) -> None:
    import subprocess
    import sys

    from framepack_widgets.runs import ownership

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    inp = FramepackInput("left behind", jpeg(), duration=20)
    store.put_image(inp.start_image)
    store.save(Run.from_input(inp, backend="simulator"), owner=f"{ownership.HOST}:{proc.pid}:deadbeef")
    before = creates(sim)
    w = open_widget(widgets, client, store=store, budget=0.50)
    rec = attach(w)
    assert w._queued["count"] == 1 and not w._queued["refused"]
    msg(w, {"type": "queued", "action": "send"})
    assert w._queued["count"] == 1 and w._queued["refused"].startswith("Today's budget: $0.50 of $0.50 left; "
                                                                       "sending 1 queued run costs $0.60.")
    assert rec.of("error")[-1][0]["message"] == w._queued["refused"]
    first = dict(w._queued)
    msg(w, {"type": "queued", "action": "send"})
    assert w._queued != first, "every answer reaches the banner (its buttons wait for one)"
    assert creates(sim) == before


# --------------------------------------------------------------------------- this notebook's runs
async def test_a_fresh_widget_in_another_notebook_opens_ready_on_its_own_history(
        client, store, widgets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", QUICKSTART)
    quick = open_widget(widgets, client, store=store)
    runs = [quick.generate()]
    await runs[0]
    quick.prompt = "the camera pans left"
    runs.append(quick.generate())
    await runs[1]
    assert {r.notebook for r in runs} == {QUICKSTART}
    # The teaching notebook's kernel opens a widget on the same store.
    monkeypatch.setenv("JPY_SESSION_NAME", LESSON)
    w = FramepackWidget(client, store=store)
    widgets.append(w)
    rec = attach(w)
    assert w.status == {}, "Ready: no run taken from the store"
    assert w._history == [] and w._history_total == 0
    assert w._history_scope == {"notebook": "teaching_demo.ipynb", "mine": 0, "all": 2}
    assert "pans left" not in w._repr_mimebundle_()[0]["text/plain"]
    # "All runs", one click away: the quickstart's runs, saying where they came from.
    w._history_all = True
    assert [c["id"] for c in w._history] == [runs[1].run_id, runs[0].run_id] and w._history_total == 2
    assert {c["from"] for c in w._history} == {"quickstart.ipynb"}
    msg(w, {"type": "history", "offset": 0})
    assert rec.of("history_page")[-1][0]["total"] == 2
    w._history_all = False
    msg(w, {"type": "history", "offset": 0})
    assert rec.of("history_page")[-1][0] == {"type": "history_page", "total": 0, "runs": []}
    # Its own run: current, in its history, counted.
    w.start_image, w.prompt = jpeg((0, 0, 200)), "a blue square"
    mine = w.generate()
    await mine
    assert w.status["run_id"] == mine.run_id and mine.notebook == LESSON
    assert [c["id"] for c in w._history] == [mine.run_id] and "from" not in w._history[0]
    assert w._history_scope == {"notebook": "teaching_demo.ipynb", "mine": 1, "all": 3}
    # The quickstart's widget in its own kernel: its runs, the lesson's one toggle away.
    monkeypatch.setenv("JPY_SESSION_NAME", QUICKSTART)
    back = FramepackWidget(client, store=store)
    widgets.append(back)
    assert back.status == {} and [c["id"] for c in back._history] == [runs[1].run_id, runs[0].run_id]


async def test_a_widget_shows_a_run_it_resumes_from_its_own_notebook(client, store, widgets,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", LESSON)
    inp = FramepackInput("resume me", jpeg(), duration=10)
    task = await client.create_task(inp)
    store.put_image(inp.start_image)
    run = Run.from_input(inp, backend="simulator")
    run.update(task_id=task.task_id, stage=RunStage.PENDING)
    store.save(run)  # the kernel that sent it stopped
    w = FramepackWidget(client, store=store)
    widgets.append(w)
    assert w.status["run_id"] == run.run_id
    await wait_for(lambda: w.status.get("stage") == "completed")


# --------------------------------------------------------------------------- exports and notices
async def test_an_export_tells_its_button_the_file_or_the_error_without_a_folder(client, store, tmp_path, widgets) -> None:
    w = open_widget(widgets, client, store=store)
    rec = attach(w)
    run = w.generate()
    await run
    msg(w, {"type": "export", "what": "card", "run_id": run.run_id})
    await wait_for(lambda: rec.of("exported"))
    (told, _), = rec.of("exported")
    assert told["what"] == "card" and told["name"].endswith(".zip") and "/" not in told["name"]
    assert rec.of("download")[0][0]["name"] == told["name"]
    assert w._notice == ""
    # A folder that cannot be written: the error names no local folder.
    blocker = tmp_path / "Jane Doe's files"
    blocker.write_text("a file where the exports folder should go")
    w._exports.folder = blocker / "exports"
    msg(w, {"type": "share", "run_ids": [run.run_id]})
    await wait_for(lambda: len(rec.of("exported")) == 2)
    failed = rec.of("exported")[1][0]
    assert failed["what"] == "gallery" and failed["error"].startswith("Export failed:") and "name" not in failed
    assert str(tmp_path) not in failed["error"] and "Jane Doe" not in failed["error"], failed["error"]


async def test_the_notice_never_shows_a_local_folder(client, tmp_path, widgets) -> None:
    folder = tmp_path / "My Work" / "store"
    folder.mkdir(parents=True)
    (folder / "runs.sqlite3").write_bytes(b"this is not a database, it was damaged" * 100)
    store = RunStore(folder)
    try:
        w = FramepackWidget(client, store=store)
        widgets.append(w)
        assert "damaged" in w._notice and "runs.sqlite3" in w._notice
        assert str(tmp_path) not in w._notice and "My Work" not in w._notice, w._notice
        w._notice_line.say(f"Saved {folder / 'exports' / 'gallery-1.zip'} and /home/someone/else/x.mp4")
        assert w._notice == "Saved exports/gallery-1.zip and x.mp4"
        assert sqlite3.connect(next(folder.glob("runs.sqlite3.damaged-*"))) is not None  # kept, not deleted
    finally:
        store.close()
