"""The runs one widget knows: lookup, history cards and pages, the current run, the spend.

Its state is what the browser draws of the runs: the history cards (the newest
`HISTORY_LIMIT`; older pages on request), the live status of the current run, whether a
Generate is still being submitted (`busy`), what this session and today have spent. It hears
every run change on the runner's channel (`note`), and keeps the chains (Extend's "part k of
n") that the cards show.

A widget opens on its own inputs ("Ready"): no run from the store becomes the current one,
only runs it starts, and those it resumes (of its notebook, or that it now drives). When the
kernel knows its notebook (`Run.notebook`), the history shows that notebook's runs, and all
of the store's runs one toggle away (`show_all`); `scope` gives both counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..constants import MIN_DURATION
from ..errors import InvalidInputError
from ..runs import Run, RunStage
from ..runs.budget import counts_toward_spend
from ..timeline import ChainIndex
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Budget, Runner, RunStore

__all__ = ["RunIndex"]

log = logging.getLogger(__name__)

#: Runs started by generate() kept to decide `busy` (the newest ones).
GENERATED_KEPT = 20
#: The largest seq or offset asked of the store (SQLite's integers stop at 2**63 - 1).
_LARGEST = 2**62


class RunIndex(t.HasTraits):
    """The runs of one widget, and what its history and status show of them.

    `changed` is called after anything the notebook's snapshot shows may have changed (a run,
    the current run, the count)."""

    history = t.List()
    history_total = t.Int(0)
    scope = t.Dict()  # {"notebook": its file name, "mine": n, "all": m}; {} when the notebook is unknown
    show_all = t.Bool(False)  # the history shows every run of the store, not only this notebook's
    status = t.Dict()
    busy = t.Bool(False)
    session_cost = t.Float(0.0)
    spend = t.Dict()  # {"today": dollars, "budget": dollars or None}

    def __init__(self, runner: "Runner", store: "RunStore", *, backend: str, notebook: str | None = None,
                 budget: "Budget | None" = None, default_eta: Callable[[int], float] | None = None,
                 changed: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self._runner = runner
        self._store = store
        self._backend = backend
        self._notebook = notebook
        self._budget = budget
        self._default_eta = default_eta
        self._changed = changed
        self._counted: dict[str, tuple[RunStage, bool]] = {}  # what the day's spend last saw of each run
        self._runs: dict[str, Run] = {}
        self._generated: list[str] = []  # runs started by generate(): what `busy` watches
        self._current: str | None = None
        self._opened_at = datetime.now(timezone.utc)
        self._eta_cache: dict[int, tuple[float, str]] = {}
        self._chains = ChainIndex(self.lookup)
        self.observe(lambda _change: self.load(), names=["show_all"])

    # ---------------------------------------------------------------- finding runs
    @property
    def runs(self) -> list[Run]:
        """The runs known here, oldest first."""
        return sorted(self._runs.values(), key=lambda r: r.created_at)

    @property
    def current(self) -> Run | None:
        """The run the status and player show."""
        return self._runs.get(self._current) if self._current else None

    def lookup(self, ref: "Run | str | None") -> Run | None:
        """A Run, or a run id known here or in the store; None when there is no such run."""
        if ref is None or isinstance(ref, Run):
            return ref
        run = self._runs.get(ref)
        if run is None:
            try:
                run = self._runner.get(ref)
            except KeyError:
                return None
            self._runs[run.run_id] = run
        return run

    def resolve(self, refs: "list[Run | str]") -> list[Run]:
        """Runs for Run objects or run ids; InvalidInputError names one that does not exist."""
        resolved = []
        for ref in refs:
            run = self.lookup(ref)
            if run is None:
                raise InvalidInputError(
                    f"No run {ref!r} in this widget's history or store: pass a Run, or a run id from widget.runs."
                )
            resolved.append(run)
        return resolved

    def chain(self, run: Run) -> list[Run]:
        """`run`'s chain, first part first (the runs it continues and that continue it)."""
        return self._chains.chain(run)

    # ---------------------------------------------------------------- the history
    @property
    def _shown_notebook(self) -> str | None:
        """The notebook the history is narrowed to (None: every run)."""
        return None if self.show_all else self._notebook

    def _mine(self, run: Run) -> bool:
        return self._notebook is None or run.notebook == self._notebook

    def load(self) -> None:
        """The newest page of the history (this notebook's runs, or all), and the spend. Called
        when the widget opens and when the history's scope changes; the current run stays."""
        try:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, notebook=self._shown_notebook)
            self._count()
        except Exception as exc:  # an unreadable store must not stop the widget from opening
            log.warning("could not read the run history: %s", exc)
            runs = []
        self._remember(runs)
        self.history = self.cards(runs)
        self._update_spend()

    def _count(self) -> None:
        everything = self._store.count()
        if self._notebook is None:
            self.scope, self.history_total = {}, everything
            return
        mine = self._store.count(notebook=self._notebook)
        self.scope = {"notebook": PurePath(self._notebook).name, "mine": mine, "all": everything}
        self.history_total = everything if self.show_all else mine

    def page(self, *, before: int | None = None, offset: int = 0) -> dict[str, Any]:
        """An older page of cards (`before` a card's seq, or at `offset`) and the total. Out
        of range is no error: before the first run, nothing; past the newest, the newest page."""
        where = self._shown_notebook
        if before is not None:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, before=min(max(0, before), _LARGEST), notebook=where)
        else:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, offset=min(max(0, offset), _LARGEST), notebook=where)
        self._remember(runs)
        return {"total": self._store.count(notebook=where), "runs": self.cards(runs)}

    def _remember(self, runs: list[Run]) -> None:
        for run in runs:
            self._runs.setdefault(run.run_id, run)

    def card(self, run: Run) -> dict[str, Any]:
        """A run's history card, with its chain ("part k of n") when it is in one, and the
        notebook it came from when that is not this one."""
        self._chains.add(run)
        card = {**proto.run_card(run), **proto.chain_fields(run, self._chains.position(run))}
        if not self._mine(run):
            card["from"] = PurePath(run.notebook).name if run.notebook else "elsewhere"
        return card

    def cards(self, runs: list[Run]) -> list[dict[str, Any]]:
        for run in runs:
            self._chains.add(run)
        return [self.card(run) for run in runs]

    def _update_card(self, run: Run) -> None:
        if self._shown_notebook is not None and run.notebook != self._shown_notebook:
            return  # another notebook's run: in "All runs" only
        card = self.card(run)
        cards = list(self.history)
        for index, old in enumerate(cards):
            if old.get("id") == card["id"]:
                if old == card:
                    return
                cards[index] = card
                break
        else:
            cards.append(card)
            self._count()
        if run.stage is RunStage.COMPLETED:
            self._eta_cache.clear()
        cards.sort(key=lambda c: c.get("created") or 0.0, reverse=True)
        self.history = cards[: proto.HISTORY_LIMIT]

    # ---------------------------------------------------------------- changes
    def note(self, run: Run) -> None:
        """A run changed (the runner's channel): its card, its chain's cards, the status when
        it is the current run (or the first this session started), and the spend."""
        try:
            self._runs[run.run_id] = run
            if self._chains.add(run):  # a chain was made or moved: the other parts' cards change too
                shown = {card.get("id") for card in self.history}
                for part in self._chains.chain(run):
                    if part.run_id != run.run_id and part.run_id in shown:
                        self._update_card(part)
            self._update_card(run)
            started_here = self._current is None and run.created_at >= self._opened_at and self._mine(run)
            if run.run_id == self._current or started_here:
                self.make_current(run)  # which tells `changed`
            else:
                self._changed()  # the history's count may have changed
            self._update_session()
            counted = (run.stage, run.task_id is not None)
            if self._counted.get(run.run_id) != counted:
                self._counted[run.run_id] = counted
                self._update_spend()
        except Exception:  # an observer must never break the run it observes
            log.exception("widget update failed for run %s", run.run_id)

    def generated(self, run: Run) -> None:
        """generate() started `run`: it becomes the current run, and `busy` watches it."""
        self._generated.append(run.run_id)
        del self._generated[:-GENERATED_KEPT]
        self._current = run.run_id
        self.note(run)

    def resumed(self, runs: list[Run]) -> None:
        """The runs `Runner.resume()` re-attached: noted, and the newest of them that is this
        notebook's (or that this runner now drives: its kernel stopped) becomes the current run
        when there is none."""
        for run in runs:
            self.note(run)
        driven = {run.run_id for run in self._runner.active}
        shown = [run for run in runs if self._mine(run) or run.run_id in driven]
        if shown and self._current is None:
            self.make_current(shown[-1])

    def last_generated(self) -> Run | None:
        return self._runs.get(self._generated[-1]) if self._generated else None

    def make_current(self, run: Run) -> None:
        """Show `run` in the status and player."""
        self._current = run.run_id
        eta, text = self._eta(run.duration or MIN_DURATION)
        self.status = proto.run_status(run, eta=eta, eta_text=text)
        self._changed()

    def _eta(self, duration: int) -> tuple[float, str]:
        """Expected wall time (and how it was estimated) from the store's finished runs."""
        if duration not in self._eta_cache:
            try:
                estimate = self._store.estimate(duration, backend=self._backend, default=self._default_eta)
                self._eta_cache[duration] = (float(estimate.seconds), estimate.describe())
            except Exception:
                log.debug("no estimate", exc_info=True)
                self._eta_cache[duration] = (12.0 * duration, "a guess")
        return self._eta_cache[duration]

    def _update_session(self) -> None:
        busy = any(run is not None and run.stage.in_flight for run in map(self._runs.get, self._generated))
        cost = 0.0
        for run in self._runs.values():
            if run.created_at < self._opened_at:
                continue  # paid (or not) in an earlier session
            if counts_toward_spend(run.stage, run.task_id):  # the day's budget counts the same runs
                cost += run.cost_usd
        self.busy = busy
        self.session_cost = round(cost, 2)

    def _update_spend(self) -> None:
        if self._budget is None:
            return
        try:
            self.spend = self._budget.summary()
        except Exception as exc:  # the figure is a nicety; the budget's check reads the store itself
            log.debug("could not add up today's spend: %s", exc)
