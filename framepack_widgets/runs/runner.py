"""`Runner`: the live work on runs — store first, then create, follow, download; cancel; resume.

A run is written to the `RunStore` before its create request is sent and saved again at
every change, so a kernel restart loses nothing: `resume()` re-attaches unfinished runs
by task id, and a create request whose outcome is unknown is kept as such and shown,
never sent again automatically. Everything this process does for a run (the asyncio task
driving it, or watching another kernel drive it, and who awaits it) lives here, in one
`Drive` per run; the `Run` itself stays a record. Timeline segments are stored WAITING
(`hold`) and sent later, at most once (`release`). Past 600 lines because every way a run
moves (start, release, cancel, resume, take-over, watch) shares the one drive registry and
the store's compare-and-set, so they stay in one class.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import (
    APIError,
    DownloadError,
    NotFoundError,
    SubmissionUnknownError,
    TaskFailedError,
    TaskTimeoutError,
)
from ..task import Task, TaskStatus
from .live import DRIVES, KNOWN, Drive, alive, driven_here, owner_gone
from .outcomes import HINT_INTERRUPTED_SUBMIT, HINT_SUBMISSION_UNKNOWN, HINT_TIMED_OUT, hint_for
from .ownership import HEARTBEAT_SECONDS, new_owner, owner_is_stale
from .record import Run, RunNotAttachedError, RunStage, stage_for_status, utcnow
from .saving import SAVE_ERRORS, PendingSaves, describe_save_error
from .store import StoreError

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient
    from ..inputs import FramepackInput
    from .store import RunStore

__all__ = ["Runner", "QUEUED_MAX_AGE"]

log = logging.getLogger(__name__)

#: A QUEUED run (never sent) older than this is not submitted by `resume()`: the person
#: pressed Generate long ago and may not want to pay for it now. It is marked CANCELLED.
QUEUED_MAX_AGE = timedelta(hours=12)
#: How often `await run` re-reads the store for a run nobody in this process follows.
POLL_STORE_SECONDS = 0.5
#: How often a Runner re-reads runs that another kernel drives (to show their progress,
#: and to take them over if that kernel stops).
WATCH_SECONDS = 2.0

def _running_loop(what: str) -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            f"Runner.{what}() needs a running asyncio event loop. In Jupyter call it from a cell "
            "(the kernel runs one); in a script call it inside `async def main()` run by "
            "`asyncio.run(main())`. For a simple blocking call use Client.generate()."
        ) from None


def _accepts_hint(wait: Callable[..., Any]) -> bool:
    """Whether a client's wait() takes `expected_seconds` (clients written to the stable
    signature `wait(task_or_id, *, timeout=None, on_update=None)` do not)."""
    try:
        params = inspect.signature(wait).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "expected_seconds" or p.kind is p.VAR_KEYWORD for p in params)


def _check_input(input: object, what: str) -> None:
    from ..inputs import FramepackInput

    if not isinstance(input, FramepackInput):
        raise TypeError(f"Runner.{what}() takes a FramepackInput, not {type(input).__name__}")


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours ago" if hours < 48 else f"{hours / 24:.0f} days ago"


class Runner:
    """Drives runs on the running asyncio loop: store first, then create, wait and download.

    `on_change(run)` is called after every saved change of any run this runner drives.
    At most `max_concurrent` runs are in flight at PiAPI at once; the others wait QUEUED
    (stored, not sent). Runs re-attached by `resume()` are already at PiAPI, so they do
    not wait for a slot (but they occupy one).
    """

    def __init__(
        self,
        client: "AsyncClient",
        store: "RunStore",
        *,
        on_change: Callable[[Run], Any] | None = None,
        max_concurrent: int = 3,
        timeout: float | None = None,
        queued_max_age: timedelta | None = QUEUED_MAX_AGE,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.client = client
        self.store = store
        self.on_change = on_change
        self.max_concurrent = max_concurrent
        self.timeout = timeout
        self.queued_max_age = queued_max_age
        self.owner = new_owner()
        self._active: dict[str, Run] = {}  # run_id -> Run this runner is driving
        self._in_flight = 0
        self._slot_free: asyncio.Condition | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self._forwarding: set[str] = set()
        self._unsaved = PendingSaves(store, self._changed)
        self._awaiting: dict[str, Run] = {}  # never sent, found by resume(): sent only when the person says

    @property
    def backend(self) -> str:
        return "simulator" if self.client.is_simulator else "piapi"

    # ----------------------------------------------------------------- starting and stopping runs
    def start(
        self,
        input: "FramepackInput",
        *,
        sweep_id: str | None = None,
        parent_id: str | None = None,
        timeline_id: str | None = None,
        segment: int | None = None,
    ) -> Run:
        """Store a new run (QUEUED) and schedule it; returns at once. Await the run for its end.

        `parent_id`: the run this one continues from its last frame (`Run.extend`);
        `timeline_id` and `segment`: the timeline it is a segment of."""
        _running_loop("start")
        _check_input(input, "start")
        run = Run.from_input(input, backend=self.backend, sweep_id=sweep_id, parent_id=parent_id,
                             timeline_id=timeline_id, segment=segment)
        run.store, run.runner = self.store, self
        KNOWN[run.run_id] = run
        for source in input.images().values():
            self.store.put_image(source)
        try:
            self.store.save(run, owner=self.owner)  # before anything is sent: nothing is lost
        except SAVE_ERRORS as exc:
            raise StoreError(
                f"Could not save the run to {self.store.db_path} ({describe_save_error(exc)}), so nothing "
                "was sent. Free some disk space (or choose another folder with FRAMEPACK_HOME) and try again."
            ) from None
        self._drive(run, submit=True)
        self._changed(run)
        return run

    # ----------------------------------------------------------------- timeline segments
    def hold(
        self,
        template: "FramepackInput",
        *,
        timeline_id: str,
        segment: int,
        parent_id: str | None,
        run_id: str | None = None,
        with_start_image: bool = False,
    ) -> Run:
        """Store a timeline segment that is not to be sent yet (WAITING: unless
        `with_start_image`, its start image will be the previous segment's last frame).
        Nothing is sent; `release` sends it, at most once."""
        _check_input(template, "hold")
        run = Run.waiting(template, backend=self.backend, timeline_id=timeline_id, segment=segment,
                          parent_id=parent_id, run_id=run_id, with_start_image=with_start_image)
        run.store, run.runner = self.store, self
        KNOWN[run.run_id] = run
        images = template.images() if with_start_image else {"end": template.end_image}
        for source in images.values():
            if source is not None:
                self.store.put_image(source)
        self.store.save(run, owner=None)  # nobody drives it until it is released
        self._changed(run)
        return run

    def release(self, run: Run, input: "FramepackInput", *, parent_id: str | None = None) -> Run:
        """Send a WAITING segment with its full `input` (start image included); returns at once.

        At most once, whatever happens: the segment is claimed, then moved WAITING -> QUEUED
        by a compare-and-set in the store. If another kernel released it first, it is
        followed (or taken over if that kernel is gone) instead, and nothing is sent here."""
        _running_loop("release")
        _check_input(input, "release")
        run.store, run.runner = run.store or self.store, self
        KNOWN.setdefault(run.run_id, run)
        if not self.store.claim(run.run_id, self.owner, owner_gone):
            run.replace_state(self.store.get(run.run_id))
            self._watch(run)
            return run
        fresh = self.store.get(run.run_id)
        if fresh.stage is not RunStage.WAITING:  # released (or withdrawn) meanwhile
            self._take_over(run)
            return run
        run.replace_state(fresh)
        run.begin(input)
        run.update(stage=RunStage.QUEUED, parent_id=parent_id or run.parent_id)
        for source in input.images().values():
            self.store.put_image(source)
        if not self._save(run, expect_stage=RunStage.WAITING):
            self._take_over(run)
            return run
        self._drive(run, submit=True)
        return run

    def withdraw(self, run: Run, *, error: str, hint: str) -> bool:
        """Mark a WAITING segment CANCELLED (its timeline stopped): it is never sent. False
        when it is not waiting any more (released meanwhile)."""
        changed = self._change_waiting(run, stage=RunStage.CANCELLED, error=error, hint=hint, finished_at=utcnow())
        if changed:
            self._changed(run)
        return changed

    def relink(self, run: Run, parent_id: str) -> bool:
        """Point a WAITING segment at the run it will continue (a retried previous segment).
        False when it is not waiting any more."""
        changed = self._change_waiting(run, parent_id=parent_id)
        if changed:
            self._changed(run)
        return changed

    def _change_waiting(self, run: Run, **changes: Any) -> bool:
        """Change a stored WAITING run, only while it is still waiting (claim, compare-and-set
        on the stage, then let go of it)."""
        run.store, run.runner = run.store or self.store, self
        run.replace_state(self.store.get(run.run_id))
        if run.stage is not RunStage.WAITING or not self.store.claim(run.run_id, self.owner, owner_gone):
            return False
        run.update(**changes)
        if not self.store.save(run, owner=self.owner, expect_stage=RunStage.WAITING):
            run.replace_state(self.store.get(run.run_id))
            return False
        self.store.save(run, owner=None)
        return True

    def cancel(self, run: Run) -> None:
        """Cancel a run. Before sending: nothing is charged. While the create request is in
        flight: cancelled as soon as PiAPI answers. Afterwards: PiAPI is asked to cancel; if it
        cannot (PiAPI documents cancelling only while pending), the run is marked cancelled here
        and its hint says the task may still be billed. Returns at once; `await run` to wait."""
        drive = driven_here(run.run_id)
        if drive is not None:
            if drive.cancel_requested:  # idempotent: a second click changes nothing
                return
            drive.cancel_requested = True
            if drive.run.stage is not RunStage.SUBMITTING:  # never interrupt a create request
                assert drive.task is not None
                drive.task.cancel()
            return
        live = KNOWN.get(run.run_id, run)
        if live.done():
            return
        # Nobody drives it in this process: act on the stored run directly.
        _running_loop("cancel")
        live.store, live.runner = live.store or self.store, self
        if not self.store.claim(live.run_id, self.owner, owner_gone):
            raise RuntimeError(f"run {live.run_id[:8]} is being driven by another kernel; cancel it there.")
        drive = self._drive_for(live)
        drive.cancel_requested = True
        self._track(drive, asyncio.get_running_loop().create_task(self._cancel_undriven(live)))

    def resume(self) -> list[Run]:
        """Re-attach the store's unfinished runs; returns them (including those needing attention).

        - PENDING/PROCESSING/DOWNLOADING/TIMED_OUT with a task id: followed again by task id.
        - QUEUED (stored, certainly never sent, e.g. the rest of a sweep whose kernel stopped):
          never sent without the person's word: listed in `awaiting_consent` until `send()` or
          `discard()`; older than `queued_max_age`, CANCELLED (nothing was charged).
        - SUBMITTING without a task id (the kernel stopped mid-request): SUBMISSION_UNKNOWN.
        - SUBMISSION_UNKNOWN: returned to be shown, never resent.
        - Runs driven by another live kernel are watched (their progress shows; they are
          taken over if that kernel stops).
        - Runs made on the other backend (simulator vs PiAPI) are left alone: never sent across.
        """
        _running_loop("resume")
        out: list[Run] = []
        for fresh in self.store.unfinished():
            if fresh.backend != self.backend:
                # A simulator run sent to PiAPI would be billed, and a PiAPI task id means
                # nothing to the simulator. Leave it for a matching runner.
                continue
            run = self._adopt(fresh)
            out.append(run)
            if driven_here(run.run_id) is not None or run.stage is RunStage.SUBMISSION_UNKNOWN:
                continue  # driven by a Runner of this process already, or shown and never resent
            if self.store.claim(run.run_id, self.owner, owner_gone):
                self._take_over(run)
            else:
                self._watch(run)
        return out

    @property
    def awaiting_consent(self) -> list[Run]:
        """Runs stored but never sent, found by `resume()`: nothing sends them until `send()`."""
        for run_id, run in list(self._awaiting.items()):
            if run.stage is not RunStage.QUEUED or driven_here(run_id) is not None:
                del self._awaiting[run_id]
        return list(self._awaiting.values())

    def send(self, runs: "list[Run] | None" = None) -> list[Run]:
        """Send runs that wait for consent (default: all of `awaiting_consent`); each is sent
        at most once, whichever kernel the person answers in."""
        _running_loop("send")
        sent = []
        for run in self._consented(runs):
            if self.store.claim(run.run_id, self.owner, owner_gone):
                self._drive(run, submit=True)
                sent.append(run)
        return sent

    def discard(self, runs: "list[Run] | None" = None) -> list[Run]:
        """Cancel runs that wait for consent (default: all): they are never sent."""
        discarded = []
        for run in self._consented(runs):
            if self.store.claim(run.run_id, self.owner, owner_gone):
                self._finish(run, RunStage.CANCELLED, error="Discarded before it was sent.",
                             hint="Nothing was sent, so nothing was charged; run.rerun() sends it again.")
                discarded.append(run)
        return discarded

    def _consented(self, runs: "list[Run] | None") -> list[Run]:
        chosen = self.awaiting_consent if runs is None else [r for r in runs if r.run_id in self._awaiting]
        for run in chosen:
            del self._awaiting[run.run_id]
            run.replace_state(self.store.get(run.run_id))  # another kernel may have decided already
        return [run for run in chosen if run.stage is RunStage.QUEUED]

    def reattach(self, run: Run) -> Run:
        """Follow a run with a task id again (after TIMED_OUT, a network ERROR or a failed download)."""
        _running_loop("reattach")
        drive = driven_here(run.run_id)
        if drive is not None:
            return drive.run
        if not run.task_id:
            raise ValueError(
                f"run {run.run_id[:8]} has no task id to follow ({run.stage}); use run.rerun() to send it again"
            )
        if run.stage is RunStage.COMPLETED and run.video_path is not None:
            return run
        if not self.store.claim(run.run_id, self.owner, owner_gone):
            raise RuntimeError(f"run {run.run_id[:8]} is being driven by another kernel")
        run.store, run.runner = run.store or self.store, self
        self._drive(run, submit=False)
        return run

    def attach(self, run: Run, task_id: str) -> Run:
        """Resolve a SUBMISSION_UNKNOWN run: you found its task in your PiAPI task list."""
        if run.stage is not RunStage.SUBMISSION_UNKNOWN:
            raise ValueError(f"attach() is for runs whose submission is unknown; this one is {run.stage}")
        task_id = str(task_id).strip()
        if not task_id:
            raise ValueError("give the task id from your PiAPI task list")
        run.update(task_id=task_id, stage=RunStage.PENDING)
        return self.reattach(run)

    def dismiss(self, run: Run) -> None:
        """Stop showing a SUBMISSION_UNKNOWN or TIMED_OUT run as unfinished (it becomes ERROR)."""
        if not run.stage.needs_attention:
            raise ValueError(f"dismiss() is for runs that need attention; this one is {run.stage}")
        run.store, run.runner = run.store or self.store, self
        note = "Dismissed. If PiAPI created a task for it, that task may still have been billed."
        self._finish(run, RunStage.ERROR, error=run.error or "Dismissed.", hint=note,
                     finished_at=run.finished_at or utcnow())

    async def wait(self, run: Run) -> Run:
        """Until `run` is final (what `await run` does); follows the store when another
        kernel drives it, and raises RunNotAttachedError when nobody does."""
        while not run.done():
            drive = DRIVES.get(run.run_id)
            if drive is not None and drive.alive():
                await drive.changed()
                if drive.run is not run:
                    run.replace_state(drive.run)
                continue
            run.replace_state(self.store.get(run.run_id))
            if run.done():
                break
            if run.run_id in self._awaiting:
                raise RunNotAttachedError(
                    f"run {run.run_id[:8]} was never sent and waits for your word: runner.send() sends it "
                    "(and charges for it), runner.discard() drops it."
                )
            owner, heartbeat_at = self.store.ownership(run.run_id)
            if owner_is_stale(owner, heartbeat_at, driven_here=False):
                raise RunNotAttachedError(
                    f"run {run.run_id[:8]} is {run.stage} but nothing is driving it (the kernel "
                    "that started it has stopped). Use runner.resume() to re-attach it."
                )
            await asyncio.sleep(POLL_STORE_SECONDS)
        return run

    # ----------------------------------------------------------------- reading runs
    def get(self, run_id: str) -> Run:
        """A run by id: the object this process already handed out (kept up to date), else
        read from the store."""
        drive = driven_here(run_id)
        if drive is not None:
            self._forward_changes(drive.run)
            return drive.run
        return self._adopt(self.store.get(run_id))

    def list(self, limit: int | None = 50, offset: int = 0, **filters: Any) -> list[Run]:
        """Runs newest first (see `RunStore.list`); runs this process already handed out come
        back as the same objects (live ones as they are, others updated from the store)."""
        return [self._adopt(run) for run in self.store.list(limit=limit, offset=offset, **filters)]

    @property
    def runs(self) -> list[Run]:
        """Every stored run, newest first (lazy: no image bytes are read)."""
        return self.list(limit=None)

    @property
    def active(self) -> list[Run]:
        """Runs this runner is driving now (not final yet)."""
        return [run for run in self._active.values() if not run.done()]

    async def wait_all(self) -> list[Run]:
        """Wait until every run this runner drives is final."""
        runs = list(self._active.values())
        for run in runs:
            await run
        return runs

    async def aclose(self) -> None:
        """Stop driving (runs stay in the store as they are and can be resumed later)."""
        tasks = [d.task for d in map(DRIVES.get, self._active) if d is not None and d.task is not None]
        tasks += list(self._watchers)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    def _adopt(self, fresh: Run) -> Run:
        """This process's object for a run just read from the store, brought up to date."""
        drive = driven_here(fresh.run_id)
        if drive is not None:
            self._forward_changes(drive.run)
            return drive.run
        known = KNOWN.get(fresh.run_id)
        if known is None or known is fresh:
            known = fresh
        else:
            known.replace_state(fresh)
        known.store, known.runner = known.store or self.store, self
        KNOWN[known.run_id] = known
        return known

    def _forward_changes(self, run: Run) -> None:
        """Report changes of a run driven by another Runner of this process to our on_change."""
        if self.on_change is None or run.runner is self or run.run_id in self._forwarding:
            return
        self._forwarding.add(run.run_id)
        on_change = self.on_change

        def forward(r: Run) -> None:
            try:
                on_change(r)
            except Exception:
                log.exception("Runner.on_change failed")

        run.observe(forward)

    # ----------------------------------------------------------------- taking runs over
    def _take_over(self, run: Run) -> None:
        """Continue a run this runner has just claimed, by the rules in `resume()`."""
        run.replace_state(self.store.get(run.run_id))  # what the previous owner wrote last
        if run.stage is RunStage.SUBMITTING and run.task_id is None:
            self._finish(run, RunStage.SUBMISSION_UNKNOWN,
                         error="The create request's outcome is unknown (the kernel stopped while sending it).",
                         hint=HINT_INTERRUPTED_SUBMIT)
        elif run.stage is RunStage.QUEUED:
            age = utcnow() - run.created_at
            if self.queued_max_age is not None and age > self.queued_max_age:
                self._finish(run, RunStage.CANCELLED,
                             error="Never sent: the kernel stopped before sending it.",
                             hint=f"Not sent automatically because it was queued {_ago(age)}. "
                                  "Nothing was charged; run.rerun() sends it now.")
            else:  # certainly never sent: the person decides whether to pay for it now
                self.store.save(run, owner=None)
                self._awaiting[run.run_id] = run
        elif run.stage.is_final and run.stage is not RunStage.TIMED_OUT:
            self.store.save(run, owner=None)  # finished meanwhile: just let go of it
        elif run.task_id:
            self._drive(run, submit=False)
        else:  # an active stage without a task id cannot be followed: say so
            self._finish(run, RunStage.SUBMISSION_UNKNOWN,
                         error="The run has no task id, so it cannot be followed.",
                         hint=HINT_SUBMISSION_UNKNOWN)

    def _watch(self, run: Run) -> None:
        drive = self._drive_for(run)
        if alive(drive.watcher):
            return
        task = asyncio.get_running_loop().create_task(
            self._watch_loop(run), name=f"framepack-watch-{run.run_id[:8]}"
        )
        drive.watcher = task
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        task.add_done_callback(lambda _t: self._ended(drive))

    async def _watch_loop(self, run: Run) -> None:
        while not run.done():
            await asyncio.sleep(WATCH_SECONDS)
            before = (run.updated_at, run.stage)
            run.replace_state(self.store.get(run.run_id))
            if (run.updated_at, run.stage) != before:
                self._changed(run)
            if run.done() or driven_here(run.run_id) is not None:
                return
            if run.stage is not RunStage.SUBMISSION_UNKNOWN and self.store.claim(run.run_id, self.owner, owner_gone):
                log.info("run %s: the kernel driving it stopped; taking it over", run.run_id)
                self._take_over(run)
                return

    # ----------------------------------------------------------------- driving
    def _drive_for(self, run: Run) -> Drive:
        """The run's drive in this process: the living one, else a new one."""
        drive = DRIVES.get(run.run_id)
        if drive is None or not drive.alive():
            drive = DRIVES[run.run_id] = Drive(run)
        return drive

    def _drive(self, run: Run, *, submit: bool) -> None:
        loop = asyncio.get_running_loop()
        run.store, run.runner = run.store or self.store, self
        if not submit and not run.stage.is_active:  # re-attaching after TIMED_OUT / ERROR / attach()
            stage = stage_for_status(run.status, RunStage.PENDING) if run.status else RunStage.PENDING
            run.update(stage=stage, error=None, hint=None, finished_at=None)
            self._save(run)  # active again before anyone awaits it
        drive = self._drive_for(run)
        self._track(drive, loop.create_task(self._execute(drive, submit=submit),
                                            name=f"framepack-run-{run.run_id[:8]}"))

    def _track(self, drive: Drive, task: asyncio.Task[None]) -> None:
        drive.task = task
        self._active[drive.run.run_id] = drive.run

        def finished(t: asyncio.Task[None]) -> None:
            if drive.task is t:  # not re-driven meanwhile
                self._active.pop(drive.run.run_id, None)
            self._ended(drive)

        task.add_done_callback(finished)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    @staticmethod
    def _ended(drive: Drive) -> None:
        """One of the drive's tasks ended: waiters re-check, and a dead drive is dropped."""
        drive.wake()
        if not drive.alive() and DRIVES.get(drive.run.run_id) is drive:
            del DRIVES[drive.run.run_id]

    async def _beat(self) -> None:
        while self._active:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                self.store.heartbeat(list(self._active), self.owner)
            except Exception:  # pragma: no cover - a busy store must not kill the runner
                log.exception("heartbeat failed")

    def _save(self, run: Run, *, expect_stage: RunStage | None = None, owner: str | None | bool = True) -> bool:
        """Write the run (as driven by this runner, unless `owner` says otherwise) and tell
        the observers. A failed write never loses what is in memory: the run is kept, says
        so, and is written again later. Only the compare-and-set before a create fails
        loudly, for then nothing may be sent."""
        who = self.owner if owner is True else owner
        if run in self._unsaved:  # earlier changes are not on disk yet: keep them in order
            self._unsaved.owner_changed(run, who)
            self._changed(run)
            return expect_stage is None
        try:
            ok = self.store.save(run, owner=who, expect_stage=expect_stage)
        except SAVE_ERRORS as exc:
            if expect_stage is not None:
                raise
            self._unsaved.add(run, who, exc)
            ok = True
        if ok:
            self._changed(run)
        return ok

    def _changed(self, run: Run) -> None:
        run.notify()
        if self.on_change is not None:
            try:
                self.on_change(run)
            except Exception:
                log.exception("Runner.on_change failed")
        if run.done():
            drive = DRIVES.get(run.run_id)
            if drive is not None:
                drive.wake()

    def _finish(self, run: Run, stage: RunStage, *, error: str | None = None, hint: str | None = None,
                **changes: Any) -> None:
        """The run reached a final stage: save it and let go of it."""
        run.update(stage=stage, error=error, hint=hint, **{"finished_at": utcnow(), **changes})
        self._save(run, owner=None)

    def _finish_quietly(self, run: Run, stage: RunStage, error: str, hint: str) -> None:
        try:
            self._finish(run, stage, error=error, hint=hint)
        except Exception:  # pragma: no cover - shutting down; resume() will sort it out
            log.exception("could not save run %s while stopping", run.run_id)

    async def _acquire_slot(self, wait: bool) -> None:
        if self._slot_free is None:
            self._slot_free = asyncio.Condition()
        async with self._slot_free:
            if wait:
                await self._slot_free.wait_for(lambda: self._in_flight < self.max_concurrent)
            self._in_flight += 1

    async def _release_slot(self) -> None:
        assert self._slot_free is not None
        async with self._slot_free:
            self._in_flight -= 1
            self._slot_free.notify_all()

    async def _execute(self, drive: Drive, *, submit: bool) -> None:
        run = drive.run
        slot = False
        try:
            await self._acquire_slot(wait=submit)
            slot = True
            task = None
            if submit:
                task = await self._submit(drive)
                if task is None:
                    return
            await self._follow(run, task)
        except asyncio.CancelledError:
            if drive.cancel_requested:
                await self._cancelled(run)
                return
            # Stopped from outside (the loop is shutting down): keep the stored stage so a
            # later resume() re-attaches. A create request cut off mid-flight is unknown.
            if run.stage is RunStage.SUBMITTING and run.task_id is None:
                self._finish_quietly(run, RunStage.SUBMISSION_UNKNOWN,
                                     "The create request was interrupted; its outcome is unknown.",
                                     HINT_SUBMISSION_UNKNOWN)
            raise
        except SubmissionUnknownError as exc:
            self._finish(run, RunStage.SUBMISSION_UNKNOWN, error=str(exc), hint=HINT_SUBMISSION_UNKNOWN)
        except TaskFailedError as exc:
            run.apply_task(exc.task)
            cancelled = exc.task.status is TaskStatus.CANCELLED
            hint = None if cancelled else "PiAPI reported the task as failed. Change the input (or try again later) and rerun."
            self._finish(run, RunStage.CANCELLED if cancelled else RunStage.FAILED,
                         error=exc.task.error or str(exc), hint=hint)
        except TaskTimeoutError as exc:
            if exc.last_task is not None:
                run.apply_task(exc.last_task)
            self._finish(run, RunStage.TIMED_OUT, error=str(exc), hint=HINT_TIMED_OUT)
        except (APIError, DownloadError) as exc:
            self._finish(run, RunStage.ERROR, error=str(exc), hint=hint_for(exc, task_id=run.task_id))
        except Exception as exc:  # a bug or an unexpected failure: keep it visible on the run
            log.exception("run %s failed unexpectedly", run.run_id)
            self._finish(run, RunStage.ERROR, error=f"Unexpected error: {type(exc).__name__}: {exc}",
                         hint=hint_for(exc, task_id=run.task_id))
        finally:
            if slot:
                await asyncio.shield(self._release_slot())

    async def _submit(self, drive: Drive) -> Task | None:
        run = drive.run
        if drive.cancel_requested:
            await self._cancelled(run)
            return None
        run.update(stage=RunStage.SUBMITTING, submitted_at=utcnow(), error=None, hint=None)
        # Compare-and-set on QUEUED -> SUBMITTING: a create request is sent at most once per run.
        try:
            stored = self._save(run, expect_stage=RunStage.QUEUED)
        except SAVE_ERRORS as exc:
            self._finish(run, RunStage.ERROR, error=f"The run could not be saved before sending: {describe_save_error(exc)}.",
                         hint=f"Nothing was sent, so nothing was charged. Free some space in {self.store.folder}, then run.rerun().")
            return None
        if not stored:
            run.replace_state(self.store.get(run.run_id))
            log.warning("run %s was taken over by another runner; not sending it", run.run_id)
            return None
        task = await self.client.create_task(run.input)
        run.update(task_id=task.task_id)
        run.apply_task(task)
        if run.stage is RunStage.SUBMITTING:
            run.update(stage=RunStage.PENDING)
        self._save(run)
        if drive.cancel_requested:  # cancel() arrived while the create request was in flight
            await self._cancelled(run)
            return None
        return task

    def _wait_hint(self, run: Run) -> dict[str, float]:
        """`expected_seconds` for client.wait when the store has learned this backend's timing
        (basis "history"): the expected wall time minus the time since submission. Empty
        otherwise (a guessed default would only mislead the poll), and never raises."""
        try:
            if run.submitted_at is None or run.duration is None or not _accepts_hint(self.client.wait):
                return {}
            estimate = self.store.estimate(run.duration, backend=self.backend)
            if estimate.basis != "history":
                return {}
            since = (utcnow() - run.submitted_at).total_seconds()
            return {"expected_seconds": max(0.0, float(estimate.seconds) - since)}
        except Exception:  # a store problem must never break a run
            log.debug("no ETA hint for run %s", run.run_id, exc_info=True)
            return {}

    async def _follow(self, run: Run, task: Task | None) -> None:
        assert run.task_id is not None

        def on_update(snapshot: Task) -> None:
            if run.apply_task(snapshot):
                self._save(run)

        try:
            # Also when resuming a download: one GET gives a fresh URL (the stored one may have
            # expired, or point at a simulator that died with the previous kernel).
            task = await self.client.wait(
                task or run.task_id, timeout=self.timeout, on_update=on_update, **self._wait_hint(run)
            )
        except NotFoundError:
            if run.stage is not RunStage.DOWNLOADING or not run.video_url:
                raise
            task = Task(task_id=run.task_id, status=TaskStatus.COMPLETED, video_url=run.video_url)
        run.apply_task(task)
        run.update(stage=RunStage.DOWNLOADING)
        self._save(run)
        tmp = self.store.temp_path(f"{run.run_id}.mp4")
        try:
            written = await self.client.download(task, tmp)
            final = self.store.add_video(Path(written))
        finally:
            if tmp.exists():
                tmp.unlink()
        self._finish(run, RunStage.COMPLETED, video_path=final, video_sha=final.stem, percent=100.0)

    async def _cancelled(self, run: Run) -> None:
        """The person cancelled: ask PiAPI when a task exists, then mark the run."""
        if run.task_id is None:
            self._finish(run, RunStage.CANCELLED, error="Cancelled before it was sent.", hint="Nothing was charged.")
            return
        if run.stage is RunStage.DOWNLOADING or run.status is TaskStatus.COMPLETED:
            self._finish(run, RunStage.CANCELLED, error="Cancelled while downloading.",
                         hint="The task had already completed at PiAPI, so it was billed. "
                              "runner.reattach(run) downloads the video after all.")
            return
        # Cancel stops the waiting here; PiAPI cancels only while the task is pending (and
        # documents it for some models only): say what it answered, and what that costs.
        try:
            answer = await self.client.cancel(run.task_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not supported, not pending any more, network...
            note = (f"PiAPI did not accept the cancel ({type(exc).__name__}: {exc}) Waiting stopped here; the "
                    "task may still run and be billed. Check your PiAPI task list.")
        else:
            if answer is not None and answer.status is TaskStatus.CANCELLED:
                run.apply_task(answer)
                note = "Cancelled at PiAPI before it started: nothing is charged."
            elif answer is not None:
                note = (f"PiAPI answered that the task is {answer.status_word or answer.status.value}, not cancelled "
                        "(it cancels only tasks that have not started): it may still run and be billed. Waiting "
                        "stopped here; runner.reattach(run) follows it again.")
            else:
                note = ("PiAPI answered the cancel without saying whether the task stopped. Waiting stopped here; "
                        "the task may still run and be billed. Check your PiAPI task list.")
        self._finish(run, RunStage.CANCELLED, error="Cancelled.", hint=note)

    async def _cancel_undriven(self, run: Run) -> None:
        if run.stage is RunStage.SUBMITTING and run.task_id is None:
            # Nobody is sending it any more: the outcome cannot be known. Say so, don't guess.
            self._finish(run, RunStage.SUBMISSION_UNKNOWN,
                         error="The create request's outcome is unknown.", hint=HINT_SUBMISSION_UNKNOWN)
            return
        await self._cancelled(run)
