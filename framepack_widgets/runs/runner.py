"""`Runner`: which runs this process drives, and the one place a run is linked to it.

A run is written to the `RunStore` before its create request is sent and saved again at
every change, so a kernel restart loses nothing: `resume()` re-attaches unfinished runs
by task id, and a create request whose outcome is unknown is kept as such and shown,
never sent again automatically. The Runner decides what happens to a run (start, hold and
release timeline segments, cancel, resume, take over another kernel's runs, wait for the
person's consent); its `Sender` (`sending.py`) does the driving itself: create, follow,
download, cancel. What this process does for one run lives in its `live.Drive`, so the `Run`
stays a record.

Every run the Runner hands out goes through `_link`: linked to the store and (when it acts
for it) this runner, known to the process, and heard on the run's change channel, which
`Runner.observe` (and `on_change=`) listens to. There is no other channel.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._observers import Observers
from ..errors import InvalidInputError, UsageError
from .budget import Budget
from .live import DRIVES, KNOWN, alive, drive_ended, drive_for, driven_here, owner_gone, running_loop
from .outcomes import HINT_INTERRUPTED_SUBMIT, HINT_SUBMISSION_UNKNOWN
from .ownership import new_owner, owner_is_stale
from .record import DrivenElsewhereError, Run, RunNotAttachedError, RunStage, utcnow
from .saving import SAVE_ERRORS, describe_save_error
from .sending import Sender
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


def _check_input(input: object, what: str) -> None:
    from ..inputs import FramepackInput

    if not isinstance(input, FramepackInput):
        raise UsageError(f"Runner.{what}() takes a FramepackInput, not {type(input).__name__}: "
                         "build one with FramepackInput(prompt, start_image, ...).")


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} hours ago" if hours < 48 else f"{hours / 24:.0f} days ago"


class Runner:
    """Drives runs on the running asyncio loop: store first, then create, wait and download.

    `observe(callback)` (or `on_change=callback`) hears every saved change of every run this
    runner has handed out (started, held, listed, read or resumed), whichever Runner of the
    process drives it. At most `max_concurrent` runs are in flight at PiAPI at once; the
    others wait QUEUED (stored, not sent). Runs re-attached by `resume()` are already at
    PiAPI, so they do not wait for a slot (but they occupy one).
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
        budget: Budget | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise InvalidInputError(f"max_concurrent must be at least 1 (got {max_concurrent!r}).")
        self.client = client
        self.store = store
        self.queued_max_age = queued_max_age
        #: The day's budget: `start()` and `send()` refuse what would pass it, before anything
        #: is stored or sent; sweeps and timelines check it for their whole price.
        self.budget = budget
        self.owner = new_owner()
        self._sender = Sender(client, store, owner=self.owner, max_concurrent=max_concurrent, timeout=timeout)
        self._observers: Observers[Run] = Observers()
        self._heard: weakref.WeakSet[Run] = weakref.WeakSet()  # runs whose channel this runner listens to
        self._watchers: set[asyncio.Task[None]] = set()
        self._awaiting: dict[str, Run] = {}  # never sent, found by resume(): sent only when the person says
        if on_change is not None:
            self.observe(on_change)

    @property
    def backend(self) -> str:
        return "simulator" if self.client.is_simulator else "piapi"

    @property
    def max_concurrent(self) -> int:
        """Runs at PiAPI at once; more wait QUEUED (stored, not sent) for a free slot."""
        return self._sender.max_concurrent

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        self._sender.max_concurrent = value

    @property
    def timeout(self) -> float | None:
        """How long one run's wait for its task may take (None: no limit of its own)."""
        return self._sender.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._sender.timeout = value

    # ----------------------------------------------------------------- the link and the channel
    def observe(self, callback: Callable[[Run], Any]) -> Callable[[], None]:
        """Call `callback(run)` after every saved change of any run this runner has handed out.
        Returns a function that stops it. (It listens on each run's own channel, `Run.observe`.)"""
        return self._observers.add(callback)

    def _link(self, run: Run, *, act: bool = True) -> Run:
        """The one place a run meets this runner: linked to the store (kept if it has one) and,
        when `act`, to this runner, which then acts for it; known to the process (one object
        per run id); and heard: its changes reach `observe`'s callbacks."""
        run.link(store=run.store or self.store, runner=self if act else (run.runner or self))
        KNOWN.setdefault(run.run_id, run)
        if run not in self._heard:
            self._heard.add(run)
            run.observe(self._observers.notify)
        return run

    def _drive(self, run: Run, *, submit: bool, slots: asyncio.Semaphore | None = None) -> None:
        self._link(run)
        self._sender.drive(run, submit=submit, slots=slots)

    # ----------------------------------------------------------------- starting and stopping runs
    def start(
        self,
        input: "FramepackInput",
        *,
        sweep_id: str | None = None,
        parent_id: str | None = None,
        timeline_id: str | None = None,
        segment: int | None = None,
        slots: asyncio.Semaphore | None = None,
    ) -> Run:
        """Store a new run (QUEUED) and schedule it; returns at once. Await the run for its end.
        Over the day's budget (`budget`) it raises BudgetExceededError, storing nothing.

        `parent_id`: the run this one continues from its last frame (`Run.extend`);
        `timeline_id` and `segment`: the timeline it is a segment of. `slots`: a cap shared
        by a group of runs (a sweep's own `max_concurrent`, stricter than this runner's): the
        run waits QUEUED, stored, until it holds one of them as well as one of the runner's."""
        running_loop("Runner.start()")
        _check_input(input, "start")
        if self.budget is not None:
            self.budget.check(input.cost_usd)
        run = self._link(Run.from_input(input, backend=self.backend, sweep_id=sweep_id, parent_id=parent_id,
                                        timeline_id=timeline_id, segment=segment))
        for source in input.images().values():
            self.store.put_image(source)
        try:
            self.store.save(run, owner=self.owner)  # before anything is sent: nothing is lost
        except SAVE_ERRORS as exc:
            raise StoreError(
                f"Could not save the run to {self.store.db_path} ({describe_save_error(exc)}), so nothing "
                "was sent. Free some disk space (or choose another folder with FRAMEPACK_HOME) and try again."
            ) from None
        self._drive(run, submit=True, slots=slots)
        self._sender.changed(run)
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
        run = self._link(Run.waiting(template, backend=self.backend, timeline_id=timeline_id, segment=segment,
                                     parent_id=parent_id, run_id=run_id, with_start_image=with_start_image))
        images = template.images() if with_start_image else {"end": template.end_image}
        for source in images.values():
            if source is not None:
                self.store.put_image(source)
        self.store.save(run, owner=None)  # nobody drives it until it is released
        self._sender.changed(run)
        return run

    def release(self, run: Run, input: "FramepackInput", *, parent_id: str | None = None) -> Run:
        """Send a WAITING segment with its full `input` (start image included); returns at once.

        At most once, whatever happens: the segment is claimed, then moved WAITING -> QUEUED
        by a compare-and-set in the store. If another kernel released it first, it is
        followed (or taken over if that kernel is gone) instead, and nothing is sent here."""
        running_loop("Runner.release()")
        _check_input(input, "release")
        self._link(run)
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
        if not self._sender.save(run, expect_stage=RunStage.WAITING):
            self._take_over(run)
            return run
        self._drive(run, submit=True)
        return run

    def withdraw(self, run: Run, *, error: str, hint: str) -> bool:
        """Mark a WAITING segment CANCELLED (its timeline stopped): it is never sent. False
        when it is not waiting any more (released meanwhile)."""
        changed = self._change_waiting(run, stage=RunStage.CANCELLED, error=error, hint=hint, finished_at=utcnow())
        if changed:
            self._sender.changed(run)
        return changed

    def relink(self, run: Run, parent_id: str) -> bool:
        """Point a WAITING segment at the run it will continue (a retried previous segment).
        False when it is not waiting any more."""
        changed = self._change_waiting(run, parent_id=parent_id)
        if changed:
            self._sender.changed(run)
        return changed

    def _change_waiting(self, run: Run, **changes: Any) -> bool:
        """Change a stored WAITING run, only while it is still waiting (claim, compare-and-set
        on the stage, then let go of it)."""
        self._link(run)
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
        running_loop("Runner.cancel()")
        self._link(live)
        if not self.store.claim(live.run_id, self.owner, owner_gone):
            raise DrivenElsewhereError(f"run {live.run_id[:8]} is being driven by another kernel; cancel it there.")
        self._sender.cancel_undriven(live)

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
        running_loop("Runner.resume()")
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
        running_loop("Runner.send()")
        if self.budget is not None:
            asked = self.awaiting_consent if runs is None else [r for r in runs if r.run_id in self._awaiting]
            self.budget.check(sum(r.cost_usd for r in asked),
                              what=f"sending {len(asked)} queued run{'s' if len(asked) != 1 else ''}")
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
                self._sender.finish(run, RunStage.CANCELLED, error="Discarded before it was sent.",
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
        running_loop("Runner.reattach()")
        drive = driven_here(run.run_id)
        if drive is not None:
            return drive.run
        if not run.task_id:
            raise InvalidInputError(
                f"run {run.run_id[:8]} has no task id to follow ({run.stage}); use run.rerun() to send it again"
            )
        if run.stage is RunStage.COMPLETED and run.video_path is not None:
            return run
        if not self.store.claim(run.run_id, self.owner, owner_gone):
            raise DrivenElsewhereError(f"run {run.run_id[:8]} is being driven by another kernel; follow it there.")
        self._drive(run, submit=False)
        return run

    def attach(self, run: Run, task_id: str) -> Run:
        """Resolve a SUBMISSION_UNKNOWN run: you found its task in your PiAPI task list."""
        if run.stage is not RunStage.SUBMISSION_UNKNOWN:
            raise InvalidInputError(f"attach() is for runs whose submission is unknown; this one is {run.stage}")
        task_id = str(task_id).strip()
        if not task_id:
            raise InvalidInputError("give the task id from your PiAPI task list")
        run.update(task_id=task_id, stage=RunStage.PENDING)
        return self.reattach(run)

    def dismiss(self, run: Run) -> None:
        """Stop showing a SUBMISSION_UNKNOWN or TIMED_OUT run as unfinished (it becomes ERROR)."""
        if not run.stage.needs_attention:
            raise InvalidInputError(f"dismiss() is for runs that need attention; this one is {run.stage}")
        self._link(run)
        note = "Dismissed. If PiAPI created a task for it, that task may still have been billed."
        self._sender.finish(run, RunStage.ERROR, error=run.error or "Dismissed.", hint=note,
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
            return self._link(drive.run, act=False)
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
        return self._sender.active

    async def wait_all(self) -> list[Run]:
        """Wait until every run this runner drives is final."""
        runs = self._sender.driven
        for run in runs:
            await run
        return runs

    async def aclose(self) -> None:
        """Stop driving (runs stay in the store as they are and can be resumed later)."""
        watchers = list(self._watchers)
        for task in watchers:
            task.cancel()
        await self._sender.aclose()
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)

    def _adopt(self, fresh: Run) -> Run:
        """This process's object for a run just read from the store, brought up to date."""
        drive = driven_here(fresh.run_id)
        if drive is not None:
            return self._link(drive.run, act=False)
        known = KNOWN.get(fresh.run_id)
        if known is None or known is fresh:
            known = fresh
        else:
            known.replace_state(fresh)
        KNOWN[known.run_id] = known
        return self._link(known)

    # ----------------------------------------------------------------- taking runs over
    def _take_over(self, run: Run) -> None:
        """Continue a run this runner has just claimed, by the rules in `resume()`."""
        run.replace_state(self.store.get(run.run_id))  # what the previous owner wrote last
        if run.stage is RunStage.SUBMITTING and run.task_id is None:
            self._sender.finish(run, RunStage.SUBMISSION_UNKNOWN,
                                error="The create request's outcome is unknown (the kernel stopped while sending it).",
                                hint=HINT_INTERRUPTED_SUBMIT)
        elif run.stage is RunStage.QUEUED:
            age = utcnow() - run.created_at
            if self.queued_max_age is not None and age > self.queued_max_age:
                self._sender.finish(run, RunStage.CANCELLED,
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
            self._sender.finish(run, RunStage.SUBMISSION_UNKNOWN,
                                error="The run has no task id, so it cannot be followed.",
                                hint=HINT_SUBMISSION_UNKNOWN)

    def _watch(self, run: Run) -> None:
        drive = drive_for(run)
        if alive(drive.watcher):
            return
        task = asyncio.get_running_loop().create_task(
            self._watch_loop(run), name=f"framepack-watch-{run.run_id[:8]}"
        )
        drive.watcher = task
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        task.add_done_callback(lambda _t: drive_ended(drive))

    async def _watch_loop(self, run: Run) -> None:
        while not run.done():
            await asyncio.sleep(WATCH_SECONDS)
            before = (run.updated_at, run.stage)
            run.replace_state(self.store.get(run.run_id))
            if (run.updated_at, run.stage) != before:
                self._sender.changed(run)
            if run.done() or driven_here(run.run_id) is not None:
                return
            if run.stage is not RunStage.SUBMISSION_UNKNOWN and self.store.claim(run.run_id, self.owner, owner_gone):
                log.info("run %s: the kernel driving it stopped; taking it over", run.run_id)
                self._take_over(run)
                return

