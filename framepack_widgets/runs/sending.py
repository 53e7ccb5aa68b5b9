"""`Sender`: one Runner's drives: the create request (at most once), the poll, the download, cancel.

Each drive is an asyncio task on the running loop, kept in the run's `live.Drive`. Every
change is saved to the store first and then told on the run's one change channel
(`Run.notify`); a write the disk refuses is kept and retried (`saving.PendingSaves`), except
the compare-and-set QUEUED -> SUBMITTING before a create request, which fails loudly, for
then nothing may be sent. At most `max_concurrent` runs are at PiAPI at once (and at most
as many of a group, a sweep, as its own slots allow); the others wait QUEUED (stored, not
sent). The `Runner` decides *which* runs to drive (start,
resume, take-over, consent); this module only drives them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import APIError, DownloadError, NotFoundError, SubmissionUnknownError, TaskFailedError, TaskTimeoutError
from ..task import Task, TaskStatus
from .live import DRIVES, Drive, drive_ended, drive_for
from .outcomes import HINT_SUBMISSION_UNKNOWN, HINT_TIMED_OUT, hint_for
from .ownership import HEARTBEAT_SECONDS
from .record import Run, RunStage, stage_for_status, utcnow
from .saving import SAVE_ERRORS, PendingSaves, describe_save_error

if TYPE_CHECKING:  # pragma: no cover
    from ..client import AsyncClient
    from .store import RunStore

__all__ = ["Sender"]

log = logging.getLogger(__name__)


def _accepts_hint(wait: Callable[..., Any]) -> bool:
    """Whether a client's wait() takes `expected_seconds` (clients written to the stable
    signature `wait(task_or_id, *, timeout=None, on_update=None)` do not)."""
    try:
        params = inspect.signature(wait).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "expected_seconds" or p.kind is p.VAR_KEYWORD for p in params)


def _keyed(create_task: Callable[..., Any], run: Run) -> dict[str, str]:
    """The run's id as the create's Idempotency-Key, for a client whose create_task takes one (the
    package's own: it sends it only to a server that honours it, the classroom service)."""
    try:
        params = inspect.signature(create_task).parameters
    except (TypeError, ValueError):
        return {}
    return {"idempotency_key": run.run_id} if "idempotency_key" in params else {}


class Sender:
    """Drives runs for one Runner (its client, store and owner id) on the running loop."""

    def __init__(self, client: "AsyncClient", store: "RunStore", *, owner: str, max_concurrent: int,
                 timeout: float | None) -> None:
        self.client = client
        self.store = store
        self.owner = owner
        self.max_concurrent = max_concurrent
        self.timeout = timeout
        self._active: dict[str, Run] = {}  # run_id -> Run being driven
        self._in_flight = 0
        self._slot_free: asyncio.Condition | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._unsaved = PendingSaves(store, self.changed)

    @property
    def backend(self) -> str:
        return "simulator" if self.client.is_simulator else "piapi"

    @property
    def active(self) -> list[Run]:
        """Runs being driven now (not final yet)."""
        return [run for run in self._active.values() if not run.done()]

    @property
    def driven(self) -> list[Run]:
        """Every run with a drive task of this sender, final or not (what `wait_all` awaits)."""
        return list(self._active.values())

    # ----------------------------------------------------------------- starting drives
    def drive(self, run: Run, *, submit: bool, slots: asyncio.Semaphore | None = None) -> None:
        """Drive `run` on the running loop: send it first (`submit`, a QUEUED run), or follow
        its task again by id (re-attaching after TIMED_OUT, ERROR or attach()). `slots`: its
        group's cap, held (before one of this sender's) while the run is at PiAPI."""
        loop = asyncio.get_running_loop()
        if not submit and not run.stage.is_active:
            stage = stage_for_status(run.status, RunStage.PENDING) if run.status else RunStage.PENDING
            run.update(stage=stage, error=None, hint=None, finished_at=None)
            self.save(run)  # active again before anyone awaits it
        drive = drive_for(run)
        self._track(drive, loop.create_task(self._execute(drive, submit=submit, slots=slots),
                                            name=f"framepack-run-{run.run_id[:8]}"))

    def cancel_undriven(self, run: Run) -> None:
        """Cancel a run nobody drives in this process (this runner has just claimed it)."""
        drive = drive_for(run)
        drive.cancel_requested = True
        self._track(drive, asyncio.get_running_loop().create_task(self._cancel_undriven(run)))

    def _track(self, drive: Drive, task: asyncio.Task[None]) -> None:
        drive.task = task
        self._active[drive.run.run_id] = drive.run

        def finished(t: asyncio.Task[None]) -> None:
            if drive.task is t:  # not re-driven meanwhile
                self._active.pop(drive.run.run_id, None)
            drive_ended(drive)

        task.add_done_callback(finished)
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def _beat(self) -> None:
        while self._active:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                self.store.heartbeat(list(self._active), self.owner)
            except Exception:  # pragma: no cover - a busy store must not kill the runner
                log.exception("heartbeat failed")

    async def aclose(self) -> None:
        """Stop every drive task (the runs stay in the store as they are)."""
        tasks = [d.task for d in map(DRIVES.get, self._active) if d is not None and d.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()

    # ----------------------------------------------------------------- saving and telling
    def save(self, run: Run, *, expect_stage: RunStage | None = None, owner: str | None | bool = True) -> bool:
        """Write the run (as driven by this runner, unless `owner` says otherwise) and tell
        its observers. A failed write never loses what is in memory: the run is kept, says
        so, and is written again later. Only the compare-and-set before a create fails
        loudly, for then nothing may be sent."""
        who = self.owner if owner is True else owner
        if run in self._unsaved:  # earlier changes are not on disk yet: keep them in order
            self._unsaved.owner_changed(run, who)
            self.changed(run)
            return expect_stage is None
        try:
            ok = self.store.save(run, owner=who, expect_stage=expect_stage)
        except SAVE_ERRORS as exc:
            if expect_stage is not None:
                raise
            self._unsaved.add(run, who, exc)
            ok = True
        if ok:
            self.changed(run)
        return ok

    def changed(self, run: Run) -> None:
        """Tell the run's change channel, and wake whoever awaits a run that is now final."""
        run.notify()
        if run.done():
            drive = DRIVES.get(run.run_id)
            if drive is not None:
                drive.wake()

    def finish(self, run: Run, stage: RunStage, *, error: str | None = None, hint: str | None = None,
               **changes: Any) -> None:
        """The run reached a final stage: save it and let go of it."""
        run.update(stage=stage, error=error, hint=hint, **{"finished_at": utcnow(), **changes})
        self.save(run, owner=None)

    def _finish_quietly(self, run: Run, stage: RunStage, error: str, hint: str) -> None:
        try:
            self.finish(run, stage, error=error, hint=hint)
        except Exception:  # pragma: no cover - shutting down; resume() will sort it out
            log.exception("could not save run %s while stopping", run.run_id)

    # ----------------------------------------------------------------- the drive itself
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

    async def _execute(self, drive: Drive, *, submit: bool, slots: asyncio.Semaphore | None = None) -> None:
        run = drive.run
        slot = False
        group = False
        try:
            if slots is not None:  # the group's slot first: a run waiting for it holds none of ours
                await slots.acquire()
                group = True
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
            self.finish(run, RunStage.SUBMISSION_UNKNOWN, error=str(exc), hint=HINT_SUBMISSION_UNKNOWN)
        except TaskFailedError as exc:
            run.apply_task(exc.task)
            cancelled = exc.task.status is TaskStatus.CANCELLED
            hint = None if cancelled else "PiAPI reported the task as failed. Change the input (or try again later) and rerun."
            self.finish(run, RunStage.CANCELLED if cancelled else RunStage.FAILED,
                        error=exc.task.error or str(exc), hint=hint)
        except TaskTimeoutError as exc:
            if exc.last_task is not None:
                run.apply_task(exc.last_task)
            self.finish(run, RunStage.TIMED_OUT, error=str(exc), hint=HINT_TIMED_OUT)
        except (APIError, DownloadError) as exc:
            self.finish(run, RunStage.ERROR, error=str(exc), hint=hint_for(exc, task_id=run.task_id))
        except Exception as exc:  # a bug or an unexpected failure: keep it visible on the run
            log.exception("run %s failed unexpectedly", run.run_id)
            self.finish(run, RunStage.ERROR, error=f"Unexpected error: {type(exc).__name__}: {exc}",
                        hint=hint_for(exc, task_id=run.task_id))
        finally:
            if slot:
                await asyncio.shield(self._release_slot())
            if group:
                assert slots is not None
                slots.release()

    async def _submit(self, drive: Drive) -> Task | None:
        run = drive.run
        if drive.cancel_requested:
            await self._cancelled(run)
            return None
        run.update(stage=RunStage.SUBMITTING, submitted_at=utcnow(), error=None, hint=None)
        # Compare-and-set on QUEUED -> SUBMITTING: a create request is sent at most once per run.
        try:
            stored = self.save(run, expect_stage=RunStage.QUEUED)
        except SAVE_ERRORS as exc:
            self.finish(run, RunStage.ERROR, error=f"The run could not be saved before sending: {describe_save_error(exc)}.",
                        hint=f"Nothing was sent, so nothing was charged. Free some space in {self.store.folder}, then run.rerun().")
            return None
        if not stored:
            run.replace_state(self.store.get(run.run_id))
            log.warning("run %s was taken over by another runner; not sending it", run.run_id)
            return None
        task = await self.client.create_task(run.input, **_keyed(self.client.create_task, run))
        run.update(task_id=task.task_id)
        run.apply_task(task)
        if run.stage is RunStage.SUBMITTING:
            run.update(stage=RunStage.PENDING)
        self.save(run)
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
                self.save(run)

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
        self.save(run)
        tmp = self.store.temp_path(f"{run.run_id}.mp4")
        try:
            written = Path(await self.client.download(task, tmp))
            await self._tag(run, written)
            final = self.store.add_video(written)
        finally:
            if tmp.exists():
                tmp.unlink()
        self.finish(run, RunStage.COMPLETED, video_path=final, video_sha=final.stem, percent=100.0)

    @staticmethod
    async def _tag(run: Run, video: Path) -> None:
        """The run's settings into the video's `comment` tag before the store names it by its
        content, so the file carries them wherever it is copied (a tag it refuses is no loss)."""
        from ..video import VideoFileError, run_settings, write_settings

        try:
            await asyncio.to_thread(write_settings, video, run_settings(run))
        except (VideoFileError, ValueError, OSError) as exc:
            log.warning("the settings of run %s could not be written into its video: %s", run.run_id, exc)

    async def _cancelled(self, run: Run) -> None:
        """The person cancelled: ask PiAPI when a task exists, then mark the run."""
        if run.task_id is None:
            self.finish(run, RunStage.CANCELLED, error="Cancelled before it was sent.", hint="Nothing was charged.")
            return
        if run.stage is RunStage.DOWNLOADING or run.status is TaskStatus.COMPLETED:
            self.finish(run, RunStage.CANCELLED, error="Cancelled while downloading.",
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
        self.finish(run, RunStage.CANCELLED, error="Cancelled.", hint=note)

    async def _cancel_undriven(self, run: Run) -> None:
        if run.stage is RunStage.SUBMITTING and run.task_id is None:
            # Nobody is sending it any more: the outcome cannot be known. Say so, don't guess.
            self.finish(run, RunStage.SUBMISSION_UNKNOWN,
                        error="The create request's outcome is unknown.", hint=HINT_SUBMISSION_UNKNOWN)
            return
        await self._cancelled(run)
