"""Following PiAPI's tasks for the class, and telling waiting students at once.

Each active task has one follower: a loop that asks PiAPI about it on the project's own
poll strategy (`AdaptivePoll`, a fresh session per task), or at once when PiAPI's webhook
says something happened (the webhook only wakes the follower: what is stored always comes
from PiAPI's own GET, so a forged or stale webhook changes nothing). Every look is stored,
and a change wakes every student waiting on that task (`Changes`), so a long poll or an
event stream learns of it in the same moment the service does.

A completed task's video is downloaded once, into the service's folder, as soon as PiAPI
says it is there; waiters are told at once, and a video asked for meanwhile waits for that
download. A task PiAPI stops knowing (404 several times) is "lost": its price stays
reserved and the teacher sees it, as with a create whose outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ..client import AdaptivePoll, PollStrategy
from ..errors import APIError, NotFoundError
from ..task import Task, TaskStatus
from ._upstream import Upstream

__all__ = ["Changes", "Followers"]

logger = logging.getLogger("framepack_widgets.service")

#: A completed task without a video URL is asked this many more times (the URL can lag).
_URL_LAG_LOOKS = 4
#: PiAPI saying it does not know an active task this many times in a row ends following it.
_NOT_FOUND_LOOKS = 5


class Changes:
    """A version number per task, and waiters woken when it moves."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}

    def version(self, key: str) -> int:
        return self._versions.get(key, 0)

    def bump(self, key: str) -> None:
        self._versions[key] = self._versions.get(key, 0) + 1
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    async def wait(self, key: str, since: int, timeout: float) -> bool:
        """True when the task changed after version `since` (at once if it already has)."""
        deadline = time.monotonic() + timeout
        while self.version(key) == since:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            event = self._events.setdefault(key, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), left)
            except asyncio.TimeoutError:
                return self.version(key) != since
        return True


#: Stores one look at a task: (task, final state or None, error) -> whether anything changed.
Record = Callable[[Task, "str | None", "str | None"], Awaitable[bool]]


class Followers:
    """One following loop per active task, woken early by webhooks."""

    def __init__(self, upstream: Upstream, record: Record, videos: Path, *,
                 on_video: Callable[[str, "str | None", "str | None"], Awaitable[None]],
                 poll: PollStrategy | None = None) -> None:
        self._upstream = upstream
        self._record = record
        self._videos = videos
        self._on_video = on_video
        self.poll = poll or AdaptivePoll()
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._downloads: dict[str, asyncio.Task[str | None]] = {}
        self.gets = 0  # GETs sent to PiAPI (for the benchmark)

    def follow(self, task_id: str, last: Task | None = None) -> None:
        if task_id in self._loops:
            return
        self._wakes[task_id] = asyncio.Event()
        loop = asyncio.get_running_loop().create_task(self._follow(task_id, last), name=f"follow {task_id}")
        self._loops[task_id] = loop
        loop.add_done_callback(lambda _: (self._loops.pop(task_id, None), self._wakes.pop(task_id, None)))

    def wake(self, task_id: str) -> bool:
        """Look at the task now (a webhook arrived); False when nothing follows it."""
        event = self._wakes.get(task_id)
        if event is None:
            return False
        event.set()
        return True

    @property
    def following(self) -> int:
        return len(self._loops)

    async def close(self) -> None:
        tasks = [*self._loops.values(), *self._downloads.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, task_id: str, last: Task | None) -> None:
        poll = self.poll.session()
        started = time.monotonic()
        attempt = errors = not_found = lag = 0
        wake = self._wakes[task_id]
        while True:
            delay = float(poll.delay(time.monotonic() - started, attempt, last))
            if errors:
                delay = max(delay, min(30.0, 0.5 * 2 ** errors))
            attempt += 1
            try:
                await asyncio.wait_for(wake.wait(), max(0.0, delay))
            except asyncio.TimeoutError:
                pass
            wake.clear()
            try:
                self.gets += 1
                task = await self._upstream.get(task_id)
            except NotFoundError:
                not_found += 1
                if not_found >= _NOT_FOUND_LOOKS:
                    await self._record_safely(last or Task(task_id, TaskStatus.UNKNOWN), "lost",
                                              "PiAPI no longer knows this task (it answers 404)")
                    return
                errors += 1
                continue
            except APIError as exc:  # transient or not, the task goes on at PiAPI: keep asking, gently
                errors += 1
                logger.info("following task %s: %s", task_id, type(exc).__name__)
                continue
            errors = not_found = 0
            last = task
            final, note = None, None
            if task.status is TaskStatus.COMPLETED:
                if not task.video_url and lag < _URL_LAG_LOOKS:
                    lag += 1
                    continue
                final = "completed"
                if task.video_url:
                    self._download_soon(task)
                else:
                    note = "PiAPI said completed but gave no video URL"
            elif task.status is TaskStatus.FAILED:
                final, note = "failed", task.error
            elif task.status is TaskStatus.CANCELLED:
                final, note = "cancelled", task.error
            await self._record_safely(task, final, note)
            if final is not None:
                return

    async def _record_safely(self, task: Task, final: str | None, note: str | None) -> None:
        try:
            await self._record(task, final, note)
        except Exception:  # noqa: BLE001 - the database hiccuped: the next look stores it again
            logger.exception("could not store a look at task %s", task.task_id)

    # ------------------------------------------------------------------ videos

    def _download_soon(self, task: Task) -> None:
        if task.task_id not in self._downloads:
            self._downloads[task.task_id] = asyncio.get_running_loop().create_task(self._download(task))

    async def video(self, task_id: str) -> str | None:
        """The video's file name once downloaded (waiting for a download under way), else None."""
        download = self._downloads.get(task_id)
        if download is None:
            return None
        try:
            return await asyncio.shield(download)
        except Exception:  # noqa: BLE001 - the download's own error is stored with the task
            return None

    def fetch(self, task: Task) -> None:
        """Download a completed task's video that a previous run of the service did not keep."""
        self._download_soon(task)

    async def _download(self, task: Task) -> str | None:
        name = f"{task.task_id}.mp4"
        try:
            await self._upstream.download(task, self._videos / name)
        except Exception as exc:  # noqa: BLE001 - DownloadError or a network error: say so, keep the task
            await self._on_video(task.task_id, None, f"the service could not download the video: {exc}")
            return None
        await self._on_video(task.task_id, name, None)
        return name
