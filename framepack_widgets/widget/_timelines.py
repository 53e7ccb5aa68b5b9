"""The Timeline panel: a planned or running timeline, or a chain of extended runs, as one video.

`_timeline_info` is what the panel draws (`_protocol.timeline_info`, and which image the
timeline starts from). A timeline is planned from the start image (with Loop on, its last
segment ends on it) and waits for "Start timeline" (or `confirm()`); while it runs, the
status and player follow the segment in progress unless the person is looking at a run of
their own. A chain (runs continued by Extend) plays as one video once every part has
completed; its stitched video reaches the browser like a run's, under the timeline's id.
Extend itself (`extension_frame`) gives the exact last frame a run is continued from.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import traitlets as t

from ..errors import InvalidInputError
from ..runs import Run, RunStage
from ..timeline import TIMELINES, Timeline, chain_timeline, plan_timeline, reopen_timelines, start_timeline
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from ..runs import Runner
    from ._index import RunIndex
    from ._slots import ImageSlots

__all__ = ["TimelinesPanel", "extension_frame"]

log = logging.getLogger(__name__)


def extension_frame(run: Run | None) -> "Image.Image":
    """The exact last frame (decoded from the video file) that continuing `run` starts from;
    InvalidInputError when there is no finished run with its video to continue."""
    if run is None:
        raise InvalidInputError("There is no run to extend yet: generate one first.")
    if run.stage is not RunStage.COMPLETED or run.video_path is None or not Path(run.video_path).is_file():
        raise InvalidInputError(
            f"Only a finished run with its video can be extended; run {run.label} is {run.stage}"
            + (" and its video is not in the run store." if run.stage is RunStage.COMPLETED else ".")
        )
    return run.last_frame()


def _shown_price(value: Any) -> float:
    """The price (US dollars) the panel showed when Start timeline was pressed: what the
    person agreed to pay. InvalidInputError when the message carries no such figure."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    raise InvalidInputError(
        "The timeline was not started: the panel did not send the price it showed, so there is nothing you "
        "agreed to pay. Nothing was sent. Reload the widget's view (or run the notebook cell again) and press "
        "Start timeline once more, or call widget.timeline(...) from Python."
    )


class TimelinesPanel(t.HasTraits):
    """The timeline (or chain) one widget's panel shows, planned from the widget's inputs."""

    timeline_info = t.Dict()

    def __init__(self, runner: "Runner", index: "RunIndex", slots: "ImageSlots", *,
                 negative_prompt: Callable[[], str], end_image: Callable[[], Any]) -> None:
        super().__init__()
        self._runner = runner
        self._index = index
        self._slots = slots
        self._negative_prompt = negative_prompt
        self._end_image = end_image  # the panel's: the End image slot's, or with Loop the start image
        self._observed: set[str] = set()
        self._starts_from: dict[str, str] = {}  # timeline id -> what its first segment starts from
        self.shown: Timeline | None = None

    # ---------------------------------------------------------------- planning and starting
    def plan(self, segments: Any, *, end_image: Any, max_cost: float | None, confirm: bool) -> Timeline:
        """Plan a timeline from the start image and the negative prompt, and show it."""
        start = self._slots.get("start")
        if start is None:
            raise InvalidInputError(
                "Add a start image first: drop one on the Start image slot, or set widget.start_image."
            )
        plan = plan_timeline(start, segments, negative_prompt=self._negative_prompt(), end_image=end_image,
                             max_cost=max_cost)
        if self.shown is not None and not self.shown.confirmed:
            self.shown.cancel()  # a new plan replaces one that was never started
        timeline = start_timeline(self._runner, plan, max_cost=max_cost)
        info = self._slots.get_info("start")
        self._starts_from[timeline.timeline_id] = str((info or {}).get("name") or "the start image")
        self.show(timeline)
        if confirm:
            timeline.confirm()
        return timeline

    def start_from_panel(self, segments: list[Any], shown_cost: Any, timeline_id: str | None) -> Timeline:
        """The panel's Start timeline: the plan shown there, at most at the price shown there.

        `shown_cost` is the person's consent figure: without it (or with something no
        price can be) nothing starts, and a plan dearer than it is refused."""
        cap = _shown_price(shown_cost)
        shown = self.shown
        wanted = [(str(s.get("prompt", "")), s.get("duration")) for s in segments if isinstance(s, dict)]
        if (shown is not None and not shown.confirmed and shown.timeline_id == timeline_id
                and [tuple(s) for s in shown.segments] == wanted):
            if shown.total_cost_usd > cap + 1e-9:
                raise InvalidInputError(
                    f"This timeline costs ${shown.total_cost_usd:,.2f}, more than the ${cap:,.2f} the panel showed, "
                    "so it was not started. Nothing was sent. Look at the plan again, then press Start timeline."
                )
            return shown.confirm()
        if shown is not None and shown.status in ("running", "stitching"):
            raise InvalidInputError("A timeline is running: cancel it, or wait for it, before starting another.")
        return self.plan(wanted, end_image=self._end_image(), max_cost=cap, confirm=True)

    def act(self, timeline_id: str, action: str, segment: Any = None) -> None:
        """The panel's Cancel and Retry segment buttons, on the timeline it shows."""
        timeline = self.shown
        if timeline is None or timeline.timeline_id != timeline_id:
            return
        if action == "cancel":
            timeline.cancel()
        elif action == "retry":
            timeline.retry(segment if isinstance(segment, int) and not isinstance(segment, bool) else None)
        self._changed(timeline)

    # ---------------------------------------------------------------- showing
    def show(self, timeline: Timeline) -> None:
        self.shown = timeline
        if timeline.timeline_id not in self._observed:
            self._observed.add(timeline.timeline_id)
            timeline.observe(self._changed)
        self._changed(timeline)

    def show_chain(self, ref: "Run | str") -> Timeline:
        """Show `ref`'s chain (the runs it continues and that continue it) as one timeline."""
        run = self._index.lookup(ref)
        if run is None:
            raise InvalidInputError(f"No run {ref!r} in this widget's history or store: pass a Run, or a run id "
                                    "from widget.runs.")
        chain = self._index.chain(run)
        timeline = chain_timeline(self._runner, chain)
        if chain:
            self._starts_from[timeline.timeline_id] = f"the start image of run {chain[0].label}"
        self.show(timeline)
        return timeline

    def reopen(self, resumed: list[Run]) -> None:
        """After resume(): carry on the store's unfinished timelines; the panel shows the newest."""
        try:
            found = reopen_timelines(self._runner, resumed)
        except Exception as exc:
            log.warning("could not reopen unfinished timelines: %s", exc)
            return
        if found and self.shown is None:
            running = [t for t in found if t.status in ("running", "stitching")]
            self.show((running or found)[-1])

    def video(self, timeline_id: str) -> Path | None:
        """The stitched video of a timeline (or chain) this process knows, for the browser."""
        timeline = TIMELINES.get(timeline_id)
        return timeline.video_path if timeline is not None else None

    def _changed(self, timeline: Timeline) -> None:
        if timeline is not self.shown:
            return
        try:
            info = proto.timeline_info(timeline)
            starts_from = self._starts_from.get(timeline.timeline_id)
            if starts_from is None and timeline.runs:
                starts_from = f"the start image of run {timeline.runs[0].label}"
            self.timeline_info = {**info, "starts_from": starts_from}
            self._follow_segment(timeline)
        except Exception:  # the panel is a view: never let it break the timeline
            log.exception("timeline panel update failed")

    def _follow_segment(self, timeline: Timeline) -> None:
        """The status and player show the segment in progress, unless the person is looking
        at a run of their own (one not in this timeline)."""
        index = timeline.current
        if timeline.status != "running" or index is None or timeline.runs[index].stage is RunStage.WAITING:
            return
        segment = timeline.runs[index]
        shown = self._index.status.get("run_id")
        if shown == segment.run_id:
            return
        looking_at = self._index.lookup(shown) if shown else None
        if looking_at is None or looking_at.timeline_id == timeline.timeline_id:
            self._index.make_current(segment)
