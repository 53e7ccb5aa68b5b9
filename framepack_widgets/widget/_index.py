"""The runs one widget knows: lookup, history cards and pages, the current run, this session's spend.

Its state is what the browser draws of the runs: the history cards (the newest
`HISTORY_LIMIT`; older pages on request), the live status of the current run, whether a
Generate is still being submitted (`busy`) and what this session has spent. It hears every
run change on the runner's channel (`note`), and keeps the chains (Extend's "part k of n")
that the cards show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..constants import MIN_DURATION
from ..errors import InvalidInputError
from ..runs import Run, RunStage
from ..timeline import ChainIndex
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Runner, RunStore

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
    status = t.Dict()
    busy = t.Bool(False)
    session_cost = t.Float(0.0)

    def __init__(self, runner: "Runner", store: "RunStore", *, backend: str,
                 default_eta: Callable[[int], float] | None = None, changed: Callable[[], None] = lambda: None) -> None:
        super().__init__()
        self._runner = runner
        self._store = store
        self._backend = backend
        self._default_eta = default_eta
        self._changed = changed
        self._runs: dict[str, Run] = {}
        self._generated: list[str] = []  # runs started by generate(): what `busy` watches
        self._current: str | None = None
        self._opened_at = datetime.now(timezone.utc)
        self._eta_cache: dict[int, tuple[float, str]] = {}
        self._chains = ChainIndex(self.lookup)

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
    def load(self) -> None:
        """The newest page of the store's runs, shown when the widget opens."""
        try:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT)
            self.history_total = self._store.count()
        except Exception as exc:  # an unreadable store must not stop the widget from opening
            log.warning("could not read the run history: %s", exc)
            runs = []
        self._remember(runs)
        self.history = self.cards(runs)
        if runs and self._current is None:
            self.make_current(runs[0])

    def page(self, *, before: int | None = None, offset: int = 0) -> dict[str, Any]:
        """An older page of cards (`before` a card's seq, or at `offset`) and the total. Out
        of range is no error: before the first run, nothing; past the newest, the newest page."""
        if before is not None:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, before=min(max(0, before), _LARGEST))
        else:
            runs = self._runner.list(limit=proto.HISTORY_LIMIT, offset=min(max(0, offset), _LARGEST))
        self._remember(runs)
        return {"total": self._store.count(), "runs": self.cards(runs)}

    def _remember(self, runs: list[Run]) -> None:
        for run in runs:
            self._runs.setdefault(run.run_id, run)

    def card(self, run: Run) -> dict[str, Any]:
        """A run's history card, with its chain ("part k of n") when it is in one."""
        self._chains.add(run)
        return {**proto.run_card(run), **proto.chain_fields(run, self._chains.position(run))}

    def cards(self, runs: list[Run]) -> list[dict[str, Any]]:
        for run in runs:
            self._chains.add(run)
        return [self.card(run) for run in runs]

    def _update_card(self, run: Run) -> None:
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
            self.history_total += 1
        if run.stage is RunStage.COMPLETED:
            self._eta_cache.clear()
        cards.sort(key=lambda c: c.get("created") or 0.0, reverse=True)
        self.history = cards[: proto.HISTORY_LIMIT]

    # ---------------------------------------------------------------- changes
    def note(self, run: Run) -> None:
        """A run changed (the runner's channel): its card, its chain's cards, the status when
        it is the current run, and the session's spend."""
        try:
            self._runs[run.run_id] = run
            if self._chains.add(run):  # a chain was made or moved: the other parts' cards change too
                shown = {card.get("id") for card in self.history}
                for part in self._chains.chain(run):
                    if part.run_id != run.run_id and part.run_id in shown:
                        self._update_card(part)
            self._update_card(run)
            if self._current is None or run.run_id == self._current:
                self.make_current(run)  # which tells `changed`
            else:
                self._changed()  # the history's count may have changed
            self._update_session()
        except Exception:  # an observer must never break the run it observes
            log.exception("widget update failed for run %s", run.run_id)

    def generated(self, run: Run) -> None:
        """generate() started `run`: it becomes the current run, and `busy` watches it."""
        self._generated.append(run.run_id)
        del self._generated[:-GENERATED_KEPT]
        self._current = run.run_id
        self.note(run)

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
            billed = run.task_id is not None and run.stage not in (RunStage.FAILED, RunStage.CANCELLED)
            if run.stage is RunStage.COMPLETED or billed:
                cost += run.cost_usd
        self.busy = busy
        self.session_cost = round(cost, 2)
