"""`Timeline`: several prompts, one video; each segment starts from the previous one's last frame.

    plan = plan_timeline(image, [("the camera zooms in", 20), ("it pans left", 20)], max_cost=2.0)
    timeline = start_timeline(runner, plan)      # pending: nothing stored, nothing sent
    timeline.confirm()                           # the widget's "Start timeline" (or confirm=True)
    await timeline                               # .runs, .status, .video_path (one stitched MP4)

Money and nothing lost, as for single runs: when a timeline is confirmed, every segment is
stored at once (WAITING, last segment first, so a stored first segment means a complete
timeline) before anything is sent. Each segment is then released by a compare-and-set in
the store (`Runner.release`), so it is sent at most once, whichever kernel gets there. A
kernel killed mid-timeline loses nothing: the running segment is re-attached by
`Runner.resume()`, and `reopen_timelines()` finds the waiting ones and carries on, since
the person confirmed them; a kernel killed while stitching left its part file in the
store's `stitched/` folder, so `reopen_timelines()` removes it and stitches that timeline
again. A segment that ends badly stops the timeline; what exists is kept, and `retry()`
sends that segment again (or follows its task again, when it may still finish at PiAPI:
nothing is paid twice).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._observers import Observers
from ..errors import InvalidInputError
from ..runs import Run, RunNotAttachedError, RunStage
from ..runs.budget import budget_of
from ..runs.live import running_loop
from ..runs.record import utcnow
from ._plan import Segment, TimelinePlan
from ..video import PART_SUFFIX, combined_settings, remove_stale_parts, run_settings
from ._stitch import stitch, stitched_path

if TYPE_CHECKING:  # pragma: no cover
    from ..runs import Runner

__all__ = ["Timeline", "TimelineStatus", "start_timeline", "reopen_timeline", "reopen_timelines", "chain_timeline"]

log = logging.getLogger(__name__)

TimelineStatus = Literal["pending", "running", "stitching", "done", "failed", "cancelled"]

#: How often a segment that another kernel is releasing is read again from the store.
POLL_SECONDS = 0.5
#: Ends a segment can be sent again after (PiAPI made no video, and said so).
_SEND_AGAIN = (RunStage.FAILED, RunStage.CANCELLED, RunStage.ERROR)

#: This process's timelines by id: two widgets (or a reopen) share one object, and one drive.
TIMELINES: "weakref.WeakValueDictionary[str, Timeline]" = weakref.WeakValueDictionary()


class Timeline:
    """One timeline: pending until confirmed, then its segments run one after another.

    `runs`: one run per segment once confirmed (waiting ones included), in order.
    `status`: pending, running, stitching, done, failed or cancelled. `video_path`: the
    stitched MP4 once done. `await timeline` returns it when it stops (done, failed or
    cancelled: a failed segment raises nothing; `retry()` continues).
    """

    def __init__(self, runner: "Runner", plan: TimelinePlan | None, *, timeline_id: str | None = None,
                 runs: Sequence[Run] = (), kind: Literal["timeline", "chain"] = "timeline") -> None:
        self.runner = runner
        self.plan = plan
        self.timeline_id = timeline_id or f"timeline-{uuid.uuid4().hex[:12]}"
        self.kind: Literal["timeline", "chain"] = kind
        self.status: TimelineStatus = "pending"
        self.runs: list[Run] = []
        self.error: str | None = None
        self.video_path: Path | None = None
        self._observers: Observers[Timeline] = Observers()
        self._followed: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False
        self._confirmed_here = False
        if runs:
            self._carry_on(list(runs))

    # ---------------------------------------------------------------- what it is
    @property
    def segments(self) -> list[Segment]:
        if self.runs:
            return [Segment(r.prompt, r.duration or 0) for r in self.runs]
        return self.plan.segments if self.plan is not None else []

    @property
    def count(self) -> int:
        return len(self.segments)

    @property
    def total_seconds(self) -> int:
        return sum(s.duration for s in self.segments)

    @property
    def total_cost_usd(self) -> float:
        if self.runs:
            return round(sum(r.cost_usd for r in self.runs), 2)
        return self.plan.total_cost_usd if self.plan is not None else 0.0

    @property
    def simulated(self) -> bool:
        return self.runner.backend == "simulator"

    def describe(self) -> str:
        n = self.count
        text = f"{n} segment{'s' if n != 1 else ''}, {self.total_seconds} s in all, ${self.total_cost_usd:,.2f}"
        return text + (" (offline simulator: nothing is charged)" if self.simulated else "")

    @property
    def confirmed(self) -> bool:
        return self.status != "pending"

    def done(self) -> bool:
        return self.status in ("done", "failed", "cancelled") and (self._task is None or self._task.done())

    @property
    def current(self) -> int | None:
        """The segment in progress (or stopped at): the first one not completed."""
        for index, run in enumerate(self.runs):
            if run.stage is not RunStage.COMPLETED:
                return index
        return None

    def can_retry(self, index: int) -> bool:
        """Whether `retry()` can continue from segment `index` now."""
        if self.status != "failed" or self.kind == "chain" or index != self.current:
            return False
        run = self.runs[index]
        return run.stage in (*_SEND_AGAIN, RunStage.TIMED_OUT, RunStage.WAITING)

    def observe(self, callback: Callable[["Timeline"], Any]) -> Callable[[], None]:
        """Call `callback(timeline)` when its status or one of its segments changes."""
        return self._observers.add(callback)

    def _notify(self) -> None:
        self._observers.notify(self)

    def _set_status(self, status: TimelineStatus, error: str | None = None) -> None:
        self.status, self.error = status, error
        self._notify()

    def _follow(self, run: Run) -> None:
        """Notify observers when a segment moves (stage or percent), so its status streams."""
        if run.run_id in self._followed:
            return
        self._followed.add(run.run_id)
        last: list[Any] = [None]

        def changed(r: Run) -> None:
            now = (r.stage, r.percent)
            if now != last[0]:
                last[0] = now
                self._notify()

        run.observe(changed)

    def __repr__(self) -> str:
        return f"<Timeline {self.timeline_id} {self.status}: {self.describe()}>"

    # ---------------------------------------------------------------- control
    def confirm(self) -> "Timeline":
        """Store every segment, then start the first (needs the running loop). Idempotent."""
        if self.status == "cancelled":
            raise InvalidInputError("This timeline was cancelled before it started; plan it again to run it.")
        if self.status != "pending":
            return self
        assert self.plan is not None
        running_loop("Timeline.confirm()")  # before anything changes: fail cleanly outside a loop
        budget = budget_of(self.runner)  # every segment within today's budget, or nothing is stored
        if budget is not None:
            budget.check(self.total_cost_usd, what=f"this timeline ({self.count} segments)")
        self._confirmed_here = True
        self.status = "running"
        inputs = self.plan.inputs
        ids = [uuid.uuid4().hex for _ in inputs]
        held: list[Run] = []
        try:
            # Last segment first: once the first segment is stored, every segment is.
            for index in reversed(range(len(inputs))):
                held.append(self.runner.hold(
                    inputs[index], timeline_id=self.timeline_id, segment=index,
                    parent_id=ids[index - 1] if index else None, run_id=ids[index], with_start_image=index == 0,
                ))
        except BaseException as exc:
            for run in held:
                self.runner.withdraw(run, error="Never sent: the timeline could not be stored.",
                                     hint="Nothing was charged.")
            self._set_status("cancelled",
                             f"The timeline could not be stored ({type(exc).__name__}: {exc}); nothing was sent.")
            raise
        self.runs = held[::-1]
        TIMELINES[self.timeline_id] = self
        for run in self.runs:
            self._follow(run)
        self._set_status("running")
        self._drive_from(0)
        return self

    def cancel(self, *, sent: bool = True) -> None:
        """Stop the timeline: waiting segments are never sent; the one at PiAPI is cancelled
        too (see Runner.cancel), unless `sent=False`, which leaves it to finish."""
        self._cancelled = True
        if self.status in ("done", "cancelled"):
            return
        for run in self.runs:
            if run.stage is RunStage.WAITING:
                self.runner.withdraw(run, error="Never sent: the timeline was cancelled.",
                                     hint="Nothing was charged for it.")
            elif not run.done() and (sent or run.stage is RunStage.QUEUED):
                try:
                    self.runner.cancel(run)
                except Exception:  # keep withdrawing the others
                    log.exception("could not cancel run %s", run.run_id)
        self._set_status("cancelled", "Cancelled." if self.status != "pending" else None)

    def retry(self, segment: int | None = None) -> "Timeline":
        """Continue a failed timeline from its failed segment (`segment`: which one; default
        the failed one). A segment PiAPI failed (or that was never sent) is sent again; one
        whose task may still finish at PiAPI (timed out, or a network error after it was
        created) is followed again by its task id, so nothing is paid twice."""
        if self.status != "failed":
            raise InvalidInputError(f"Nothing to retry: this timeline is {self.status}.")
        if self.kind == "chain":
            raise InvalidInputError("This is a chain of extended runs, not a timeline: rerun or extend its runs instead.")
        running_loop("Timeline.retry()")
        index = self.current if segment is None else int(segment)
        if index is None:  # every segment completed: only the stitching failed
            self._cancelled = False
            self._set_status("running")
            self._drive_from(len(self.runs))
            return self
        if index != self.current:
            raise InvalidInputError(f"Segment {index + 1} cannot be retried: segment {(self.current or 0) + 1} comes first.")
        run = self.runs[index]
        if run.stage is RunStage.SUBMISSION_UNKNOWN:
            raise InvalidInputError(
                f"Segment {index + 1} was maybe created at PiAPI (its create request got no answer), so it is "
                f"not sent again. {run.hint or ''} Then call timeline.retry()."
            )
        if run.stage is RunStage.TIMED_OUT or (run.stage is RunStage.ERROR and run.task_id):
            self.runner.reattach(run)  # the same task, followed again: nothing new is sent
        elif run.stage in _SEND_AGAIN or run.stage is RunStage.WAITING:
            if run.stage is not RunStage.WAITING:
                budget = budget_of(self.runner)
                if budget is not None:
                    budget.check(run.cost_usd, what=f"sending segment {index + 1} again")
                self.runs[index] = self._send_again(index, run)
        else:
            raise InvalidInputError(f"Segment {index + 1} is {run.stage}; there is nothing to retry.")
        self._cancelled = False
        self._confirmed_here = True  # the person asked for it now
        self._set_status("running")
        self._drive_from(index)
        return self

    def _send_again(self, index: int, old: Run) -> Run:
        """A new run for segment `index` (stored WAITING first, and the next segment pointed
        at it, so a kernel killed in between still finds one consistent timeline)."""
        if old.has_start_image:
            template = old.input
        else:  # never sent: its start image is the previous segment's last frame
            template = old.segment_input(self.runs[index - 1].last_frame())
        new = self.runner.hold(template, timeline_id=self.timeline_id, segment=index, parent_id=old.parent_id,
                               with_start_image=True)
        if index + 1 < len(self.runs) and self.runs[index + 1].stage is RunStage.WAITING:
            self.runner.relink(self.runs[index + 1], new.run_id)
        self._follow(new)
        return new

    # ---------------------------------------------------------------- driving
    def _carry_on(self, runs: list[Run]) -> None:
        """A timeline over stored runs (confirmed earlier, or a chain): carried on where it
        stopped when a loop runs, else shown as it is."""
        self.runs = runs
        self.status = "running"
        TIMELINES[self.timeline_id] = self
        for run in runs:
            self._follow(run)
        index = self.current
        if index is not None and runs[index].done() and runs[index].stage is not RunStage.WAITING:
            self._stopped_at(index, runs[index])
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop to drive it on: shown as it is
        self._drive_from(index if index is not None else len(runs))

    def _drive_from(self, first: int) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._drive(first), name=f"framepack-{self.timeline_id}")
        self._task.add_done_callback(lambda _t: self._notify())

    async def _drive(self, first: int) -> None:
        try:
            for index in range(first, len(self.runs)):
                run = self.runs[index]
                if run.stage is RunStage.WAITING:
                    released = await self._release(index)
                    if released is None:
                        return
                    run = self.runs[index] = released
                await self._settle(run)
                if self._cancelled:
                    return
                if run.stage is not RunStage.COMPLETED:
                    self._stopped_at(index, run)
                    return
            if self.runs:
                await self._stitch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("timeline %s stopped", self.timeline_id)
            self._set_status("failed", f"The timeline stopped: {type(exc).__name__}: {exc}")

    async def _release(self, index: int) -> Run | None:
        """Send waiting segment `index`, from the previous segment's last frame (None: not sent)."""
        run = self.runs[index]
        age_limit = self.runner.queued_max_age
        if not self._confirmed_here and age_limit is not None and run.created_at + age_limit < utcnow():
            self._set_status("failed", f"Segment {index + 1} was not sent automatically: this timeline was confirmed "
                                       "long ago (the kernel stopped before sending it). Nothing was charged for it; "
                                       "Retry segment (timeline.retry()) sends it now.")
            return None
        previous = self.runs[index - 1] if index else None
        if run.has_start_image:
            inp = run.input
        else:
            assert previous is not None
            frame = await asyncio.to_thread(previous.last_frame)  # decoded from the file, exactly
            inp = await asyncio.to_thread(run.segment_input, frame)
        if self._cancelled:
            return None
        return self.runner.release(run, inp, parent_id=None if previous is None else previous.run_id)

    async def _settle(self, run: Run) -> None:
        """Until the segment is final (released by another kernel, it is read from the store)."""
        resumed = False
        while True:
            if run.stage is RunStage.WAITING and not self._cancelled:
                await asyncio.sleep(POLL_SECONDS)
                run.replace_state(self.runner.store.get(run.run_id))
                continue
            try:
                await run
                return
            except RunNotAttachedError:
                if resumed:
                    raise
                resumed = True
                self.runner.resume()  # its kernel stopped: take it over

    def _stopped_at(self, index: int, run: Run) -> None:
        cancelled = run.stage is RunStage.CANCELLED and not any(r.stage is RunStage.WAITING for r in self.runs)
        what = f"Segment {index + 1} of {len(self.runs)} ended {run.stage.value.replace('_', ' ')}"
        detail = f": {run.error}" if run.error else "."
        follow = "" if cancelled or self.kind == "chain" else (
            " The segments before it are kept; Retry segment (timeline.retry()) continues.")
        self._set_status("cancelled" if cancelled else "failed", what + detail + follow)

    async def _stitch(self) -> None:
        self._set_status("stitching")
        paths = [r.video_path for r in self.runs]
        missing = [i + 1 for i, p in enumerate(paths) if p is None or not Path(p).is_file()]
        if missing:
            self._set_status("failed", f"The video of segment {missing[0]} is not in the run store any more, so the "
                                       "timeline cannot be stitched.")
            return
        target = stitched_path(self.runner.store.folder, [_video_key(r) for r in self.runs])
        if not target.is_file():
            try:
                settings = combined_settings(self.kind, [run_settings(r) for r in self.runs], timeline_id=self.timeline_id)
                await asyncio.to_thread(stitch, [Path(str(p)) for p in paths], target, should_stop=lambda: self._cancelled,
                                        settings=settings)
            except InterruptedError:
                return
            except Exception as exc:
                log.exception("stitching timeline %s failed", self.timeline_id)
                self._set_status("failed", f"Stitching the segments failed ({type(exc).__name__}: {exc}). Their videos "
                                           "are kept; timeline.retry() stitches again.")
                return
        self.video_path = target
        self._set_status("done")

    # ---------------------------------------------------------------- awaiting
    def __await__(self):  # type: ignore[no-untyped-def]
        return self.wait().__await__()

    async def wait(self) -> "Timeline":
        """Until the timeline stops (done, failed or cancelled); returns it (same as `await timeline`)."""
        if self.status == "pending":
            raise InvalidInputError(
                "This timeline has not been confirmed, so nothing is running: call timeline.confirm() "
                "(or press Start timeline in the widget) first."
            )
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        return self


def start_timeline(
    runner: "Runner", plan: TimelinePlan, *, confirm: bool = False, max_cost: float | None = None
) -> Timeline:
    """A Timeline for `plan` on `runner`; started only when `confirm=True` (else `.confirm()`).
    `max_cost` is checked again here, before anything else happens."""
    plan.check_cost(max_cost)
    timeline = Timeline(runner, plan)
    if confirm:
        timeline.confirm()
    return timeline


# -------------------------------------------------------------------- reopening
def reopen_timeline(runner: "Runner", timeline_id: str, known: Iterable[Run] = (),
                    waiting: Sequence[Run] | None = None) -> Timeline | None:
    """The Timeline stored under `timeline_id`, carried on (after `runner.resume()`).

    `known`: runs of it at hand (e.g. those resume() re-attached); its waiting segments are
    read from the store (`waiting`, when the caller has them already), the others found
    through their parents. A timeline whose storing was cut short (the kernel stopped while
    it was being confirmed) is withdrawn, never sent; None then.
    """
    existing = TIMELINES.get(timeline_id)
    if existing is not None:
        return existing
    if waiting is None:
        waiting = runner.list(limit=None, stages=[RunStage.WAITING])
    members = {r.run_id: r for r in (*known, *waiting) if r.timeline_id == timeline_id}
    complete = bool(members)
    for run in list(members.values()):
        parent = run.parent_id
        while parent and parent not in members:
            try:
                found = runner.get(parent)
            except KeyError:
                complete = False
                break
            members[found.run_id] = found
            parent = found.parent_id
    newest: dict[int, Run] = {}
    for run in members.values():
        if run.segment is not None and (run.segment not in newest or run.created_at > newest[run.segment].created_at):
            newest[run.segment] = run
    runs = [newest[k] for k in sorted(newest)]
    if not complete or [r.segment for r in runs] != list(range(len(runs))):
        for run in runs:
            runner.withdraw(run, error="Never sent: the kernel stopped while this timeline was being stored.",
                            hint="Nothing was charged. Start the timeline again.")
        log.warning("timeline %s was never fully stored; its waiting segments were withdrawn", timeline_id)
        return None
    return Timeline(runner, None, timeline_id=timeline_id, runs=runs)


def reopen_timelines(runner: "Runner", resumed: Iterable[Run] = ()) -> list[Timeline]:
    """Every stored timeline that is not finished, carried on: those with waiting segments,
    those of `resumed` runs (what `runner.resume()` re-attached), and those whose stitching
    a killed kernel cut short (stitched again). Oldest first."""
    waiting = runner.list(limit=None, stages=[RunStage.WAITING])
    resumed = list(resumed)
    cut_short = _cut_short_stitches(runner)
    known = [*resumed, *(run for runs in cut_short.values() for run in runs)]
    ids: dict[str, None] = {}
    for run in sorted((*known, *waiting), key=lambda r: r.created_at):
        if run.timeline_id:
            ids.setdefault(run.timeline_id, None)
    found = [reopen_timeline(runner, tid, known, waiting) for tid in ids]
    return [t for t in found if t is not None]


def _video_key(run: Run) -> str:
    """What names a segment's video in a stitch's cache key (its content hash)."""
    return run.video_sha or Path(str(run.video_path)).stem


def _cut_short_stitches(runner: "Runner") -> dict[str, list[Run]]:
    """Timelines a killed kernel was stitching: their segments (all completed), by timeline id.

    A stitch writes a part file in the store's `stitched/` folder (`video.PartFile`, named
    `.<key>.<random>.part.mp4` after the video it becomes) and holds a lock on it; the part
    files nobody holds are removed here, and their keys say which timelines to stitch again.
    Only then are the completed runs read (rare: after a kill mid-stitch)."""
    folder = stitched_path(runner.store.folder, []).parent

    def parts() -> set[str]:
        try:
            return {entry.name for entry in os.scandir(folder) if entry.name.endswith(PART_SUFFIX)}
        except OSError:
            return set()

    before = parts()
    if not before:
        return {}
    remove_stale_parts(folder)
    keys = {name[1:].split(".", 1)[0] for name in before - parts()}
    if not keys:
        return {}
    segments: dict[str, dict[int, Run]] = {}
    for run in runner.store.list(limit=None, stages=[RunStage.COMPLETED]):
        if run.timeline_id and run.segment is not None and run.video_path is not None:
            newest = segments.setdefault(run.timeline_id, {})
            if run.segment not in newest or run.created_at > newest[run.segment].created_at:
                newest[run.segment] = run
    found: dict[str, list[Run]] = {}
    for timeline_id, newest in segments.items():
        runs = [newest[k] for k in sorted(newest)]
        if [r.segment for r in runs] != list(range(len(runs))):
            continue
        target = stitched_path(runner.store.folder, [_video_key(r) for r in runs])
        if target.stem in keys and not target.is_file():
            found[timeline_id] = [runner.get(r.run_id) for r in runs]
    return found


def chain_timeline(runner: "Runner", chain: Sequence[Run]) -> Timeline:
    """A chain of runs (each continuing the one before, by Extend) as a Timeline: it plays
    as one video once every run in it has completed. A timeline's own runs give the timeline."""
    if not chain:
        raise InvalidInputError("A chain needs at least one run: pass the runs it is made of, first part first.")
    tid = chain[-1].timeline_id
    if tid and all(r.timeline_id == tid for r in chain):
        found = reopen_timeline(runner, tid, chain)
        if found is not None:
            return found
    timeline_id = f"chain-{chain[-1].run_id[:16]}"
    existing = TIMELINES.get(timeline_id)
    if existing is not None and [r.run_id for r in existing.runs] == [r.run_id for r in chain]:
        return existing
    return Timeline(runner, None, timeline_id=timeline_id, runs=chain, kind="chain")


