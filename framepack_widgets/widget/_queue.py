"""Runs a stopped kernel left stored but never sent: shown with their price, sent only when
the person says (Send), or dropped (Discard). `queued` is what the widget's banner draws."""

from __future__ import annotations

from typing import TYPE_CHECKING

import traitlets as t

from ..errors import BudgetExceededError

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Run, Runner

__all__ = ["QueuedRuns"]

#: Run ids of the queued runs sent to the banner (the count and cost cover them all).
RUN_IDS_SHOWN = 100


class QueuedRuns(t.HasTraits):
    """The runs waiting for the person's word (`Runner.awaiting_consent`)."""

    queued = t.Dict()

    def __init__(self, runner: "Runner", *, simulated: bool) -> None:
        super().__init__()
        self._runner = runner
        self._simulated = simulated
        self._refusals = 0

    def send(self) -> "list[Run]":
        """Send them (charged like any run); each at most once, whichever kernel says so first.
        Past the day's budget nothing is sent: the banner says why (BudgetExceededError)."""
        try:
            sent = self._runner.send()
        except BudgetExceededError as exc:
            self._refusals += 1  # a new answer each time: the banner's buttons wait for one
            self.update(refused=str(exc))
            raise
        self.update()
        return sent

    def discard(self) -> "list[Run]":
        """Drop them: nothing is sent or charged."""
        dropped = self._runner.discard()
        self.update()
        return dropped

    def update(self, refused: str = "") -> None:
        waiting = self._runner.awaiting_consent
        if not waiting:
            self.queued = {}
            return
        cost = round(sum(run.cost_usd for run in waiting), 2)
        runs = f"{len(waiting)} queued run{'s' if len(waiting) != 1 else ''}"
        self.queued = {
            "count": len(waiting),
            "cost_usd": cost,
            "run_ids": [run.run_id for run in waiting][:RUN_IDS_SHOWN],
            "text": f"{runs}, ${cost:,.2f}" + (" (simulated, nothing is charged)" if self._simulated else "")
            + " \u2014 stored, never sent (the kernel stopped first). Send or discard them?",
            "refused": refused,
            "refusals": self._refusals,
        }
