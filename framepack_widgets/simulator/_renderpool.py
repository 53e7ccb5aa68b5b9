"""The render pool: a few worker threads that turn a task's images into its MP4.

Why apart from the clock and the HTTP server: rendering is the only slow, CPU-bound part
of the simulator. A task's render is submitted as soon as the task is created and runs
beside its clock; jobs are keyed by content, so identical requests render once, and
simulators sharing a state folder take a file lock per clip so that it is rendered once
across processes too. PIL, numpy and av are imported in the workers only (via `_render`).
A render writes a `.part.mp4` beside its clip and renames it whole; the part files a killed
process left are removed when a pool starts (`remove_old_parts`: by age, as a render holds
no lock on its part file).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ImageBytes", "RenderJob", "RenderPool", "remove_old_parts", "STALE_PART_SECONDS"]

logger = logging.getLogger("framepack_widgets.simulator")

#: A part file older than this was left by a process killed mid-write (no render or image
#: write takes this long); younger ones may be another simulator's work in progress.
STALE_PART_SECONDS = 600.0


def remove_old_parts(folder: Path, suffix: str = ".part.mp4", *, min_age: float = STALE_PART_SECONDS) -> int:
    """Remove the files named `*<suffix>` in `folder` (not below it) last written more than
    `min_age` seconds ago: half-written files of a killed simulator. Returns how many went."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if (entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False)
                    and now - entry.stat(follow_symlinks=False).st_mtime > min_age):
                os.unlink(entry.path)
                removed += 1
        except OSError as exc:  # gone already, or not ours to remove
            logger.debug("left %s: %s", entry.path, exc)
    if removed:
        logger.info("removed %d half-written file(s) a stopped simulator left in %s", removed, folder)
    return removed

ImageBytes = bytes | Callable[[], bytes]  # the bytes, or a loader run in the render thread


@dataclass
class RenderJob:
    """One clip: where it goes, and when (and how) its render ended."""

    key: str
    path: Path
    done_ns: int | None = None
    error: str | None = None
    seconds: float | None = None  # wall time spent rendering here (0.0: the file was found made)

    def found_on_disk(self) -> bool:
        """Mark the job done when its file exists (rendered earlier, or by another process)."""
        try:
            self.done_ns = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if self.seconds is None:
            self.seconds = 0.0
        return True


class RenderPool:
    """A bounded pool rendering each distinct clip once (per process; the file is shared)."""

    def __init__(self, folder: Path, *, workers: int, long_side: int, label: bool, stopping: threading.Event,
                 on_done: Callable[[RenderJob], None] | None = None, shared: bool = False):
        self.folder = folder
        self.shared = shared  # other processes render into this folder too: take a lock per clip
        self.long_side = long_side
        self.label = label
        self._stopping = stopping
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="framepack-sim-render")
        self._jobs: dict[str, RenderJob] = {}
        self._lock = threading.Lock()
        remove_old_parts(folder)  # renders a killed process cut short

    def submit(self, key: str, start: ImageBytes, end: ImageBytes | None, motion: str, duration: int, *,
               long_side: int | None = None, label: bool | None = None) -> RenderJob:
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.error is None and (job.done_ns is None or job.path.exists()):
                return job
            job = RenderJob(key, self.folder / f"{key}.mp4")
            self._jobs[key] = job
            if job.found_on_disk():  # a kept workdir, or another simulator over the same state_dir
                return job
        self._pool.submit(self._run, job, start, end, motion, duration,
                          self.long_side if long_side is None else long_side,
                          self.label if label is None else label)
        return job

    def _run(self, job: RenderJob, start: ImageBytes, end: ImageBytes | None, motion: str, duration: int,
             long_side: int, label: bool) -> None:
        from ._render import render_video

        lock = None
        try:
            if self.shared:
                lock = self._file_lock(job)
                if job.found_on_disk():  # another simulator over the same folder made it while we waited
                    return
            start_bytes = start() if callable(start) else start
            end_bytes = end() if callable(end) else end
            result = render_video(
                job.path, start_bytes, end_bytes, motion=motion, duration=duration, long_side=long_side,
                label=label, should_stop=self._stopping.is_set,
            )
            job.seconds = result.seconds
            logger.debug("rendered %s (%s s, %s) in %.2f s", job.key, duration, motion, result.seconds)
        except BaseException as exc:  # noqa: BLE001 - reported on the task, never lost
            job.error = f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
            if not self._stopping.is_set():
                logger.exception("the simulator could not render %s", job.key)
        finally:
            if lock is not None:
                lock.close()  # releases the flock
            if job.done_ns is None:
                job.done_ns = time.time_ns()
            if self._on_done is not None:
                try:
                    self._on_done(job)
                except Exception:  # noqa: BLE001 - bookkeeping must not kill the worker
                    logger.exception("the simulator could not record the render of %s", job.key)

    def _file_lock(self, job: RenderJob) -> Any:
        """Hold `<key>.lock` while rendering, so simulators sharing a state_dir render a clip once.

        An flock dies with its process, so a killed kernel never leaves a clip locked.
        Returns the open lock file (close it to release), or None where flock is unavailable.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: at worst a clip is rendered twice
            return None
        fd = os.open(job.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        handle = os.fdopen(fd, "a+b")  # closed by the caller
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    if self._stopping.wait(0.05):
                        from ._render import RenderCancelled

                        raise RenderCancelled("the simulator stopped") from None
        except BaseException:
            handle.close()
            raise

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
