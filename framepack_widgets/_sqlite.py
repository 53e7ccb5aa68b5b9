"""SQLite as both the run store and the simulator's state use it: WAL, short write transactions,
files private to their user.

Several kernels (processes) may open the same file at once; WAL lets readers go on while
one writer commits, and BEGIN IMMEDIATE takes the write lock up front so two writers
queue instead of deadlocking. What these databases hold (prompts, images, videos) is the
user's own: folders 0700, files 0600 (or stricter, by umask), also when a folder already
existed with looser modes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._environment import umask

__all__ = [
    "SharedConnection",
    "connect_wal",
    "private_database",
    "private_file",
    "private_folder",
    "write_private",
    "write_transaction",
]


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode & ~umask())
    except FileNotFoundError:
        pass


def private_file(path: Path) -> None:
    """Only the user may read it: 0600 (or stricter, by umask)."""
    _chmod(path, 0o600)


def private_folder(path: Path) -> Path:
    """Make the folder (and its parents) if missing, and let only the user in: 0700 (or
    stricter, by umask), also when it already existed with looser modes."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file only the user may read (0600 from its first byte, also over an older file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    private_file(path)


def private_database(db_path: Path) -> None:
    """The database and its WAL companions (SQLite gives them the database's mode) made private."""
    for suffix in ("", "-wal", "-shm"):
        private_file(Path(f"{db_path}{suffix}"))


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
