"""SQLite as both the run store and the simulator's state use it: WAL, short write transactions.

Several kernels (processes) may open the same file at once; WAL lets readers go on while
one writer commits, and BEGIN IMMEDIATE takes the write lock up front so two writers
queue instead of deadlocking.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def connect_wal(db_path: Path, *, busy_timeout: float, where: str) -> sqlite3.Connection:
    """Open `db_path` in WAL mode, waiting up to `busy_timeout` s for other processes.

    `where` names the setting to move when the disk cannot do WAL (network file systems).
    """
    db = sqlite3.connect(str(db_path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        deadline = time.monotonic() + busy_timeout
        while True:  # switching to WAL needs a moment alone with the file; another process may hold it
            try:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(
                f"could not switch {db_path} to WAL mode (got {mode!r}); "
                f"put {where} on a local disk (network file systems do not support it)"
            )
        db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


@contextmanager
def write_transaction(db: sqlite3.Connection, lock: "threading.RLock") -> Iterator[sqlite3.Connection]:
    """One short write transaction, rolled back on any error."""
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class SharedConnection:
    """Base of an object owning one connection that several threads use (the kernel's loop and
    worker threads): every use holds `_lock`. Subclasses open `_db` and make `_lock`."""

    _db: sqlite3.Connection
    _lock: "threading.RLock"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with write_transaction(self._db, self._lock) as db:
            yield db

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()
