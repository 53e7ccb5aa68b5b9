"""Runs whose change could not be written (a full disk, a store gone read-only): kept in
memory, said so on the run, and written again with backoff until the store takes them.

A create request that has been answered must never lose its task id to a failed write:
the id stays on the run in memory, the run keeps being followed (the task exists and is
charged), and the message names the id so the person can find the task at PiAPI.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from .record import Run

if TYPE_CHECKING:  # pragma: no cover
    from .store import RunStore

__all__ = ["SAVE_ERRORS", "PendingSaves", "describe_save_error"]

log = logging.getLogger(__name__)

#: What a failed write to the store raises.
SAVE_ERRORS = (sqlite3.Error, OSError)
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


def describe_save_error(exc: BaseException) -> str:
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "full" in str(exc).lower()
    return "the disk is full" if full else f"{type(exc).__name__}: {exc}"


class PendingSaves:
    """The runs one Runner could not save yet, and the task that keeps trying."""

    def __init__(self, store: "RunStore", on_saved: Callable[[Run], None]) -> None:
        self._store = store
        self._on_saved = on_saved
        self._pending: dict[str, tuple[Run, str | None, str]] = {}  # run_id -> (run, owner, note)
        self._task: asyncio.Task[None] | None = None

    def __contains__(self, run: Run) -> bool:
        return run.run_id in self._pending

    def add(self, run: Run, owner: str | None, exc: BaseException) -> None:
        """Remember the run (its latest state is written when the store takes it) and say so on it."""
        why = describe_save_error(exc)
        if run.task_id:
            what = (f"Its task {run.task_id} exists at PiAPI (and is charged); it is followed here and "
                    f"can be found in your PiAPI task list by that id.")
        else:
            what = "No task has been created for it."
        note = (f"Run {run.run_id[:8]} could not be saved to {self._store.db_path}: {why}. {what} "
                "Free some disk space: it is saved again automatically.")
        if run.run_id not in self._pending:
            log.error("%s", note)
        self._pending[run.run_id] = (run, owner, note)
        run.update(hint=note)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._retry(), name="framepack-save-retry")

    def owner_changed(self, run: Run, owner: str | None) -> None:
        if run.run_id in self._pending:
            _run, _owner, note = self._pending[run.run_id]
            self._pending[run.run_id] = (run, owner, note)

    async def _retry(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while self._pending:
            await asyncio.sleep(delay)
            for run_id, (run, owner, note) in list(self._pending.items()):
                if run.hint == note:
                    run.update(hint=None)
                try:
                    self._store.save(run, owner=owner)
                except SAVE_ERRORS:
                    run.update(hint=note)
                    continue
                del self._pending[run_id]
                log.info("run %s saved after all", run_id)
                self._on_saved(run)
            delay = min(MAX_RETRY_SECONDS, delay * 2)
