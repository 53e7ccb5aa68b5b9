"""This process's live work on runs: one `Drive` per run, shared by every Runner.

A drive holds the asyncio task driving a run (or watching another kernel drive it),
whether the person asked to cancel it, and who awaits it. The registry is per process,
so two widgets on one store never drive the same run twice, and everyone holds the same
`Run` object for one run id.
"""

from __future__ import annotations

import asyncio
import weakref

from ..errors import NoEventLoopError
from .ownership import owner_is_stale
from .record import Run

__all__ = ["Drive", "DRIVES", "KNOWN", "alive", "drive_ended", "drive_for", "driven_here", "owner_gone", "running_loop"]


class Drive:
    """What this process is doing for one run: the asyncio task driving it (or watching
    another kernel drive it), whether the person asked to cancel it, and who awaits it."""

    __slots__ = ("run", "task", "watcher", "cancel_requested", "_waiters")

    def __init__(self, run: Run) -> None:
        self.run = run
        self.task: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.cancel_requested = False
        self._waiters: list[asyncio.Future[None]] = []

    def driving(self) -> bool:
        """Its task is sending or following the run right now."""
        return alive(self.task) and not self.run.done()

    def alive(self) -> bool:
        """It is driving or watching the run."""
        return alive(self.task) or alive(self.watcher)

    async def changed(self) -> None:
        """Until the run is final or this drive's tasks end."""
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                try:
                    fut.get_loop().call_soon_threadsafe(_resolve, fut)
                except RuntimeError:  # that loop is closed
                    pass


#: This process's live work, by run id (shared by every Runner, so two widgets on one
#: store never drive the same run twice).
DRIVES: dict[str, Drive] = {}
#: The Run object handed out for each run id in this process, so everyone holds the same one.
KNOWN: "weakref.WeakValueDictionary[str, Run]" = weakref.WeakValueDictionary()


def alive(task: "asyncio.Task[None] | None") -> bool:
    return task is not None and not task.done() and not task.get_loop().is_closed()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def running_loop(call: str) -> asyncio.AbstractEventLoop:
    """The running asyncio loop, which `call` (e.g. "Runner.start()") needs to drive runs on."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise NoEventLoopError(
            f"{call} needs a running asyncio event loop. In Jupyter call it from a cell "
            "(the kernel runs one); in a script call it inside `async def main()` run by "
            "`asyncio.run(main())`. For a simple blocking call use Client.generate()."
        ) from None


def drive_for(run: Run) -> Drive:
    """The run's drive in this process: the living one, else a new one."""
    drive = DRIVES.get(run.run_id)
    if drive is None or not drive.alive():
        drive = DRIVES[run.run_id] = Drive(run)
    return drive


def drive_ended(drive: Drive) -> None:
    """One of the drive's tasks ended: waiters re-check, and a dead drive is dropped."""
    drive.wake()
    if not drive.alive() and DRIVES.get(drive.run.run_id) is drive:
        del DRIVES[drive.run.run_id]


def driven_here(run_id: str) -> Drive | None:
    drive = DRIVES.get(run_id)
    return drive if drive is not None and drive.driving() else None


def owner_gone(owner: str | None, heartbeat_at: float | None, run_id: str) -> bool:
    """`RunStore.claim`'s test: the run's owner is gone, so this process may take it over."""
    return owner_is_stale(owner, heartbeat_at, driven_here=driven_here(run_id) is not None)
