"""The sweep panel: a planned grid of runs, priced, waiting for "Start sweep", then its progress.

`sweep_info` is what the panel draws (`Sweep.summary()`). Nothing is sent until the sweep is
confirmed (the button, `sweep.confirm()` or `confirm=True`); a new plan replaces one never
started. When a sweep finishes, its completed runs (up to `MAX_COMPARED`) open in the
comparison grid.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..constants import MAX_COMPARED
from ..runs import RunStage

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput
    from ..runs import Runner
    from ..sweeps import Sweep
    from ._comparison import Comparison

__all__ = ["SweepPanel", "texts_the_sweep_gives"]

log = logging.getLogger(__name__)

#: Run ids of a sweep sent to the panel (the count and progress cover them all).
RUN_IDS_SHOWN = 100
#: In the input a sweep's grid is built on, the text of a field the sweep gives itself:
#: every entry replaces it with its own value (checked then, and named by its entry).
GIVEN_BY_THE_SWEEP = "(given by the sweep)"


def texts_the_sweep_gives(**axes: Any) -> dict[str, str]:
    """The text fields (prompt, negative prompt) a sweep gives values for, as stand-ins for
    the widget's own: a sweep that gives its prompts needs none in the widget, and an empty
    or bad Prompt box does not stop it. (Images and durations need none: the widget's are
    valid or absent, and a sweep's replace them in every entry.)"""
    return {name: GIVEN_BY_THE_SWEEP for name, values in axes.items() if values is not None}


class SweepPanel(t.HasTraits):
    """The one sweep a widget shows."""

    sweep_info = t.Dict()

    def __init__(self, runner: "Runner", comparison: "Comparison") -> None:
        super().__init__()
        self._runner = runner
        self._comparison = comparison
        self.shown: Sweep | None = None

    def plan(self, base: "FramepackInput", *, repeats: int = 1, max_cost: float | None = None,
             max_concurrent: int | None = 3, confirm: bool = False, loop: bool = False, **axes: Any) -> "Sweep":
        """Plan a sweep over `axes` (lists of values to try: start images too) on `base` and
        show it; started only when confirmed. `max_cost` refuses a dearer sweep; `loop`: each
        run ends on its own start image."""
        from ..sweeps import plan_sweep, start_sweep

        plan = plan_sweep(base, repeats=repeats, max_cost=max_cost, loop=loop, **axes)
        if self.shown is not None and not self.shown.confirmed:
            self.shown.cancel()  # a new plan replaces one that was never started
        sweep = start_sweep(self._runner, plan, confirm=False, max_concurrent=max_concurrent, max_cost=max_cost)
        self.shown = sweep
        sweep.observe(self._changed)
        if confirm:
            sweep.confirm()
        self._changed(sweep)
        return sweep

    def act(self, sweep_id: str, action: str) -> None:
        """The panel's buttons: "confirm" starts the shown sweep, "cancel" stops (or drops) it."""
        sweep = self.shown
        if sweep is None or sweep_id != sweep.sweep_id:
            return
        if action == "confirm":
            sweep.confirm()
        else:
            sweep.cancel()
            if not sweep.runs:
                self.shown, self.sweep_info = None, {}
                return
        self._changed(sweep)

    def _changed(self, sweep: "Sweep") -> None:
        if sweep is not self.shown:
            return
        try:
            info = sweep.summary()
            info["run_ids"] = info["run_ids"][:RUN_IDS_SHOWN]
            self.sweep_info = info
            if info["state"] == "done" and self._comparison.sweep_id != sweep.sweep_id:
                finished = [r for r in sweep.runs if r.stage is RunStage.COMPLETED][:MAX_COMPARED]
                if len(finished) >= 2:
                    self._comparison.show(finished, sweep_id=sweep.sweep_id)
        except Exception:
            log.exception("sweep update failed")
