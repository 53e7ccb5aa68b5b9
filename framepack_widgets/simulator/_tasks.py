"""The tasks one simulator knows: in memory, and in its state folder when it has one.

Why apart from the endpoints: with a state folder, a task id may belong to a task this
simulator made, to one another simulator over the same folder made (still running, or
in a process that died), or to nothing. `TaskBook` answers "which task is this id" for
every endpoint: it registers new tasks (storing them before anyone learns their id),
loads stored ones on first use with their clock mapped onto this process, takes in what
other simulators did (a cancel, a finished video, a failed render), starts a render again
when a stored task's video was never finished, and lists the tasks the account is
charged for. Without a state folder it is a dict under a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ._clock import SimTask
from ._renderpool import ImageBytes, RenderJob, RenderPool, remove_old_parts

if TYPE_CHECKING:  # pragma: no cover
    from ._state import SimState, TaskRow

__all__ = ["TaskBook"]

logger = logging.getLogger("framepack_widgets.simulator")


class TaskBook:
    """task_id -> SimTask, backed by the state folder while serving with one.

    `open()` when the simulator starts serving (its state, if any, and its render pool),
    `close()` when it stops; the tasks stay readable in between and after.
    """

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._tasks: dict[str, SimTask] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._state: SimState | None = None
        self._renders_dir: Path | None = None
        self._renderer: RenderPool | None = None

    def open(self, state: "SimState | None", renders_dir: Path, renderer: RenderPool) -> None:
        self._state, self._renders_dir, self._renderer = state, renders_dir, renderer
        if state is not None:
            remove_old_parts(state.images_dir, ".part")  # input images a killed process was writing

    def close(self) -> None:
        self._state = None

    def snapshot(self) -> dict[str, SimTask]:
        with self._lock:
            return dict(self._tasks)

    def forget(self, task_ids: list[str]) -> None:
        """Drop tasks pruned from the state folder."""
        with self._lock:
            for task_id in task_ids:
                self._tasks.pop(task_id, None)

    # ---------------------------------------------------------------- new tasks

    def add(self, task: SimTask, start: bytes, end: bytes | None) -> None:
        """Register a new task (stored first, so any simulator can serve it) and start its render."""
        state = self._state
        if state is not None:
            assert task.start_sha256 is not None
            images = [(task.start_sha256, start)]
            if end is not None and task.end_sha256 is not None:
                images.append((task.end_sha256, end))
            state.add_task(_row(task), images)
        with self._lock:
            self._tasks[task.task_id] = task
        self._attach_render(task, start, end)

    def _attach_render(self, task: SimTask, start: ImageBytes, end: ImageBytes | None) -> None:
        """Submit (or share) the task's render; called once the task is registered."""
        assert self._renderer is not None
        job = self._renderer.submit(task.render_key, start, end, task.motion, task.duration,
                                    long_side=task.long_side, label=task.label)
        task.render = job
        if job.done_ns is not None and job.error is not None:
            self.render_done(job)  # it failed before the task held it: record it now (idempotent)

    def render_done(self, job: RenderJob) -> None:
        """A render ended: with a state_dir, store a failure on its tasks so every simulator agrees."""
        state = self._state
        if state is None or job.error is None or self._stopping.is_set():
            return  # success is the file itself; a render stopped with the simulator is redone later
        with self._lock:
            ids = [task.task_id for task in self._tasks.values() if task.render is job and task.persisted]
        state.set_render_error(ids, job.error, job.done_ns or time.time_ns())

    # ---------------------------------------------------------------- lookups

    def find(self, task_id: str) -> SimTask | None:
        """The task by id: known here, else loaded from the state_dir; None when it does not exist."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            return self._load(task_id)
        if task.persisted:
            self._refresh(task)
        return task

    def _load(self, task_id: str) -> SimTask | None:
        """A task another simulator over the same state_dir created (or this one, before a restart)."""
        state = self._state
        if state is None:
            return None
        with self._load_lock:  # one load per id, even when many clients poll it at once
            with self._lock:
                known = self._tasks.get(task_id)
            if known is not None:
                return known
            row = state.get_task(task_id)
            if row is None:
                return None
            assert self._renders_dir is not None
            task = _task_from_row(row, self._renders_dir)
            with self._lock:
                self._tasks[task_id] = task
            if task.cancelled_ns is None and task.fail_after is None and task.render.error is None:  # wants a video
                start = partial(self._stored_image, row.start_sha, "start")
                end = partial(self._stored_image, row.end_sha, "end") if row.end_sha else None
                self._attach_render(task, start, end)  # the file if it exists, else rendered again
            logger.debug("loaded task %s from %s", task_id, state.folder)
            return task

    def _stored_image(self, sha256: str, name: str) -> bytes:
        """Input bytes for a re-render (runs in the render thread)."""
        state = self._state
        if state is None:
            raise RuntimeError("the simulator stopped")
        try:
            return state.load_image(sha256)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"the task's {name} image is no longer in the simulator's state folder {state.folder} "
                "(pruned or deleted), so its video cannot be made again: create the task again"
            ) from None

    def _refresh(self, task: SimTask, *, cancel: bool = True) -> None:
        """Take in what another simulator over the same state_dir did: a cancel, a finished video."""
        state = self._state
        if state is None:
            return
        if cancel and task.cancelled_ns is None and task.state()["status"] == "pending":
            cancelled = state.cancelled_ns(task.task_id)
            if cancelled is not None:
                with self._lock:
                    task.cancelled_ns = task.cancelled_ns or cancelled
        job = task.render
        if job.done_ns is None and job.error is None:
            job.found_on_disk()  # rendered by another process while our worker waits for its lock

    # ---------------------------------------------------------------- changes and totals

    def cancel(self, task: SimTask) -> str | None:
        """Cancel a pending task; else the status that forbids it (the first cancel stored wins)."""
        state = self._state if task.persisted else None
        with self._lock:
            status = task.state()["status"]
            if status != "pending":
                return status
            now = time.time_ns()
            if state is None:
                task.cancelled_ns = now
        if state is not None:  # the first cancel stored wins, whichever simulator took it
            stored = state.cancel(task.task_id, now)
            with self._lock:
                task.cancelled_ns = task.cancelled_ns or stored or now
        return None

    def ledger(self) -> list[SimTask]:
        """Every task the account is charged for: with a state_dir, all stored ones."""
        state = self._state
        if state is None:
            return list(self.snapshot().values())
        out: list[SimTask] = []
        for row in state.all_tasks():
            with self._lock:
                task = self._tasks.get(row.task_id)
                if task is not None and task.cancelled_ns is None and row.cancelled_ns is not None:
                    task.cancelled_ns = row.cancelled_ns
            if task is not None:
                self._refresh(task, cancel=False)  # the row's cancel was applied just above
            else:  # a view only: not registered, no render started
                assert self._renders_dir is not None
                task = _task_from_row(row, self._renders_dir)
                if task.render.error is None:
                    task.render.found_on_disk()
            out.append(task)
        return out


# ----------------------------------------------------------------------------- rows


def _row(task: SimTask) -> "TaskRow":
    """The task as the state folder stores it."""
    from ._state import TaskRow

    record = {
        "v": 1,
        "input": task.input_echo,
        "config": task.config_echo,
        "duration": task.duration,
        "motion": task.motion,
        "has_end_image": task.has_end_image,
        "notes": list(task.notes),
        "pending_seconds": task.pending_seconds,
        "processing_seconds": task.processing_seconds,
        "time_scale": task.time_scale,
        "fail_after": task.fail_after,
        "fail_message": task.fail_message,
        "long_side": task.long_side,
        "label": task.label,
        "profile": task.profile,
        "status_words": task.status_words,
        "output_shape": task.output_shape,
        "url_lag": task.url_lag,
    }
    return TaskRow(task.task_id, task.created_ns, task.clock_ends_ns, task.render_key, task.start_sha256,
                   task.end_sha256, task.cancelled_ns, None, None, record)


def _task_from_row(row: "TaskRow", renders_dir: Path) -> SimTask:
    """A stored task, its clock mapped onto this process's monotonic clock (wall time goes on)."""
    rec = row.record
    now_wall, now_mono = time.time_ns(), time.monotonic_ns()
    path = renders_dir / f"{row.render_key}.mp4"
    task = SimTask(
        task_id=row.task_id,
        input_echo=dict(rec["input"]),
        config_echo=dict(rec["config"]),
        duration=int(rec["duration"]),
        motion=str(rec["motion"]),
        has_end_image=bool(rec["has_end_image"]),
        notes=list(rec.get("notes") or []),
        created_ns=row.created_ns,
        created_mono_ns=now_mono - (now_wall - row.created_ns),
        pending_seconds=float(rec["pending_seconds"]),
        processing_seconds=float(rec["processing_seconds"]),
        time_scale=float(rec["time_scale"]),
        render=RenderJob(row.render_key, path),
        fail_after=None if rec.get("fail_after") is None else float(rec["fail_after"]),
        fail_message=rec.get("fail_message"),
        cancelled_ns=row.cancelled_ns,
        render_key=row.render_key,
        start_sha256=row.start_sha,
        end_sha256=row.end_sha,
        long_side=int(rec["long_side"]),
        label=bool(rec["label"]),
        persisted=True,
        profile=str(rec.get("profile") or "rich"),  # tasks stored before profiles existed answered richly
        status_words=rec.get("status_words") or None,
        output_shape=rec.get("output_shape"),
        url_lag=int(rec.get("url_lag") or 0),
    )
    if row.render_error is not None:
        task.render = RenderJob(row.render_key, path, done_ns=row.render_error_ns or row.created_ns,
                                error=row.render_error)
    return task
