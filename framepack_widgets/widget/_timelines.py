"""The widget's chains and timelines: Extend, "part k of n" on run cards, the Timeline panel.

Kept apart from `_widget.py` so the widget's own module stays about inputs, runs and
comparison; `FramepackWidget.extend_from`, `.timeline` and `.show_chain` hand over to this.
The panel's state is the `timeline_info` trait (`_protocol.timeline_info`); a stitched
video reaches the browser like a run's video, under the timeline's id.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ..runs import Run, RunStage
from ..timeline import TIMELINES, ChainIndex, Timeline, chain_timeline, plan_timeline, reopen_timelines, start_timeline
from . import _protocol as proto

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import FramepackInput
    from ._widget import FramepackWidget

__all__ = ["WidgetTimelines"]

log = logging.getLogger(__name__)


class WidgetTimelines:
    """One widget's chain index, its Extend link and the timeline its panel shows."""

    def __init__(self, widget: "FramepackWidget") -> None:
        self._widget = widget
        self._chains = ChainIndex(self._find)
        self._extending: tuple[str, str] | None = None  # (run id, sha256 of its last frame as sent)
        self._observed: set[str] = set()
        self.shown: Timeline | None = None

    def _find(self, run_id: str) -> Run | None:
        return self._widget._lookup(run_id)

    # ---------------------------------------------------------------- cards
    def card(self, run: Run) -> dict[str, Any]:
        """A run's history card, with its chain ("part k of n") when it is in one."""
        self._chains.add(run)
        return {**proto.run_card(run), **proto.chain_fields(run, self._chains.position(run))}

    def cards(self, runs: list[Run]) -> list[dict[str, Any]]:
        for run in runs:
            self._chains.add(run)
        return [self.card(run) for run in runs]

    def note(self, run: Run) -> None:
        """A run changed: when that made or moved a chain, the other parts' cards change too."""
        if not self._chains.add(run):
            return
        shown = {card.get("id") for card in self._widget.history}
        for part in self._chains.chain(run):
            if part.run_id != run.run_id and part.run_id in shown:
                self._widget._update_card(part)

    # ---------------------------------------------------------------- extend
    def extend_from(self, ref: "Run | str | None") -> None:
        widget = self._widget
        run = widget._lookup(ref if ref is not None else widget.status.get("run_id"))
        if run is None:
            raise InvalidInputError("There is no run to extend yet: generate one first.")
        if run.stage is not RunStage.COMPLETED or run.video_path is None or not Path(run.video_path).is_file():
            raise InvalidInputError(
                f"Only a finished run with its video can be extended; run {run.run_id[:8]} is {run.stage}"
                + (" and its video is not in the run store." if run.stage is RunStage.COMPLETED else ".")
            )
        frame = run.last_frame()  # decoded from the video file: the exact last frame
        widget._set_image("start", frame, name=f"last frame of run {run.run_id[:8]}")
        start = widget.start_image
        assert start is not None
        widget.end_image = None
        widget.prompt, widget.negative_prompt = run.prompt, run.negative_prompt
        if run.duration is not None:
            widget.duration = run.duration
        self._extending = (run.run_id, start.sha256)
        widget.notice = (f"Extending run {run.run_id[:8]}: its last frame is the start image. "
                         "Edit the prompt if you like, then press Generate.")

    def extending(self, inp: "FramepackInput") -> str | None:
        """The run `inp` continues: the one Extend filled the inputs from, while its last
        frame is still the start image."""
        if self._extending is None:
            return None
        run_id, sha = self._extending
        return run_id if inp.start_image.sha256 == sha else None

    # ---------------------------------------------------------------- the panel
    def plan(self, segments: Any, *, end_image: Any, max_cost: float | None, confirm: bool) -> Timeline:
        widget = self._widget
        start = widget.start_image
        if start is None:
            raise InvalidInputError(
                "Add a start image first: drop one on the Start image slot, or set widget.start_image."
            )
        plan = plan_timeline(start, segments, negative_prompt=widget.negative_prompt, end_image=end_image,
                             max_cost=max_cost)
        if self.shown is not None and not self.shown.confirmed:
            self.shown.cancel()  # a new plan replaces one that was never started
        timeline = start_timeline(widget.runner, plan, max_cost=max_cost)
        self.show(timeline)
        if confirm:
            timeline.confirm()
        return timeline

    def start_from_panel(self, segments: list[Any], shown_cost: Any, timeline_id: str | None) -> Timeline:
        """The panel's Start timeline: the plan shown there, at most at the price shown there."""
        shown = self.shown
        wanted = [(str(s.get("prompt", "")), s.get("duration")) for s in segments if isinstance(s, dict)]
        if (shown is not None and not shown.confirmed and shown.timeline_id == timeline_id
                and [tuple(s) for s in shown.segments] == wanted):
            return shown.confirm()
        if shown is not None and shown.status in ("running", "stitching"):
            raise InvalidInputError("A timeline is running: cancel it, or wait for it, before starting another.")
        cap = shown_cost if isinstance(shown_cost, (int, float)) and not isinstance(shown_cost, bool) else None
        return self.plan(wanted, end_image=self._widget.end_image, max_cost=cap, confirm=True)

    def act(self, timeline_id: str, action: str, segment: Any = None) -> None:
        timeline = self.shown
        if timeline is None or timeline.timeline_id != timeline_id:
            return
        if action == "cancel":
            timeline.cancel()
        elif action == "retry":
            timeline.retry(segment if isinstance(segment, int) and not isinstance(segment, bool) else None)
        self._changed(timeline)

    def show(self, timeline: Timeline) -> None:
        self.shown = timeline
        if timeline.timeline_id not in self._observed:
            self._observed.add(timeline.timeline_id)
            timeline.observe(self._changed)
        self._changed(timeline)

    def show_chain(self, ref: "Run | str") -> Timeline:
        run = self._widget._lookup(ref)
        if run is None:
            raise ValueError(f"No run {ref!r} in this widget's history or store.")
        timeline = chain_timeline(self._widget.runner, self._chains.chain(run))
        self.show(timeline)
        return timeline

    def _changed(self, timeline: Timeline) -> None:
        if timeline is not self.shown:
            return
        try:
            self._widget.timeline_info = proto.timeline_info(timeline)
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
        shown = self._widget.status.get("run_id")
        if shown == segment.run_id:
            return
        looking_at = self._widget._lookup(shown) if shown else None
        if looking_at is None or looking_at.timeline_id == timeline.timeline_id:
            self._widget._make_current(segment)

    def reopen(self, resumed: list[Run]) -> None:
        """After resume(): carry on the store's unfinished timelines; the panel shows the newest."""
        try:
            found = reopen_timelines(self._widget.runner, resumed)
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
