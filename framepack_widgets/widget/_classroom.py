"""The widget in a class: the class budget in the header and "Share with class" on run cards.

A student's server on a JupyterHub whose teacher set FRAMEPACK_SERVICE_URL makes the widget's
client talk to the classroom service (`client.is_class_service`). Then this part reads the
student's class budget from the service's `account/info` when a view first appears and after
each run ends, learns which of the student's runs are in the class gallery (once, with the
first view), and shares or unshares a run's task when its card's button asks. Outside a class
it does nothing and its trait stays {}, so the browser shows none of it.

Why with the first view, not when the widget is made: JupyterLab (4.4 and later) sends a
widget's messages over a kernel subshell, whose thread runs its own event loop, and the
client's connections belong to the loop that first used them. Read from the view's first
message, the budget uses the loop every button of the view will use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..errors import FramepackError

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient
    from ..runs import Run

__all__ = ["CLASS_LABEL", "ClassPanel"]

log = logging.getLogger(__name__)

CLASS_LABEL = "Class service"
CLASS_SIM_LABEL = "Class service \u2014 offline simulator: videos are synthetic, not FramePack's"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class ClassPanel(t.HasTraits):
    """The class's figures for the header and the runs shared with the class (task ids)."""

    #: {} outside a class; else {"active", "left", "total", "paused", "shared": [task ids], "v"}.
    info = t.Dict()
    #: The header badge's text in a class ("" outside one).
    label = t.Unicode("")

    def __init__(self, client: "AsyncClient", *, lookup: Callable[[str], "Run | None"],
                 spawn: Callable[[Coroutine[Any, Any, Any]], Any], say: Callable[[str], None]) -> None:
        super().__init__()
        self.active = bool(getattr(client, "is_class_service", False))
        self._client = client
        self._lookup = lookup
        self._spawn = spawn
        self._say = say
        self._counted: set[str] = set()  # runs whose end already refreshed the budget
        self._shared: set[str] = set()
        self._figures: dict[str, Any] = {}
        self._version = 0
        self._opened = False
        if self.active:
            self.label = CLASS_LABEL
            self._publish()

    def open(self) -> None:
        """A view appeared (its "hello"): the first time, read the budget and which runs are shared."""
        if self.active and not self._opened:
            self._opened = True
            self._spawn(self.refresh(gallery=True))

    def note(self, run: "Run") -> None:
        """A run changed (the runner's change channel): once it has ended, read the budget again."""
        if self.active and run.done() and run.run_id not in self._counted:
            self._counted.add(run.run_id)
            self._spawn(self.refresh())

    async def refresh(self, *, gallery: bool = False) -> None:
        """The student's class budget from the service (and, with `gallery`, what they shared)."""
        try:
            account = await self._client.account_info()
            if gallery:
                me = account.get("account_name")
                self._shared = {task.task_id for task in await self._client.class_gallery()
                                if (task.raw.get("class_service") or {}).get("owner") == me}
        except Exception as exc:  # noqa: BLE001 - the figures are a help: never let them break the widget
            log.debug("the class service's account info: %s", type(exc).__name__)
            return
        budget = account.get("budget") if isinstance(account.get("budget"), dict) else {}
        self._figures = {"left": _number(budget.get("left")), "total": _number(budget.get("total")),
                         "paused": bool(account.get("paused"))}
        if account.get("simulated"):
            self.label = CLASS_SIM_LABEL
        self._publish()

    def share(self, run_id: str, shared: bool) -> None:
        """Put a finished run in the class gallery (or take it out): the card's button."""
        run = self._lookup(run_id)
        if not self.active or run is None or not run.task_id or not run.stage.is_final:
            self._say("Only a finished run of yours can be shared with the class.")
            self._publish()
            return
        self._spawn(self._share(run, shared))

    async def _share(self, run: "Run", shared: bool) -> None:
        assert run.task_id is not None
        try:
            task = await self._client.share_with_class(run.task_id, shared)
        except FramepackError as exc:
            self._say(f"Run {run.label} was not {'shared' if shared else 'taken out of the class gallery'}: {exc}")
        except Exception as exc:  # noqa: BLE001 - e.g. the widget closed its client meanwhile
            log.debug("sharing run %s: %s", run.run_id, type(exc).__name__)
        else:
            now = bool((task.raw.get("class_service") or {}).get("shared", shared))
            (self._shared.add if now else self._shared.discard)(run.task_id)
            self._say(f"Run {run.label} is {'in' if now else 'no longer in'} the class gallery.")
        self._publish()

    def _publish(self) -> None:
        self._version += 1  # a new value every time: a button waiting on an answer hears it
        self.info = {"active": True, **self._figures, "shared": sorted(self._shared), "v": self._version}
