"""The simulator's persistent state: tasks that outlive the process that created them.

Why: a hosted service keeps its tasks while your kernel is dead. With `state_dir`, the
embedded simulator does too, so a run re-attached by task id after a kernel restart finds
its task (and nothing is created, or paid, twice).

Layout of a state folder:

    state.sqlite3        tasks (one row each) and meta (the starting credits); SQLite, WAL mode
    images/<sha256>      decoded input images, stored once by content hash
    files/<key>.mp4      rendered videos, keyed by content (identical requests share one file)
    files/<key>.lock     held (flock) while a process renders that clip, so it is rendered once
    uploads/             files posted to /api/ephemeral_resource

A task row holds everything its envelope and its video are derived from: created_at (wall
time, ns), its clock (pending/processing seconds, time_scale), duration, prompt (in the
input echo), motion, render settings, the fault-driven failure, the cancel time and a
render failure. Status is never stored: every process derives it from the wall clock, so
any number of simulators can serve the same tasks. The credits ledger is derived from the
rows too (frozen while a task runs, consumed once when it completes, released when it
fails or is cancelled): one row per task id, so nothing is charged twice.

Each write is one short `BEGIN IMMEDIATE` transaction, so several processes may open one
folder at once. Nothing here is ever deleted automatically: `Simulator.prune_state()` does
it on request. Light to import (stdlib only).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._sqlite import SharedConnection, connect_wal, private_database, private_folder
from ._errors import SimulatorError

__all__ = ["DB_NAME", "SCHEMA_VERSION", "ORPHAN_GRACE_SECONDS", "PruneResult", "SimState", "TaskRow"]

DB_NAME = "state.sqlite3"
SCHEMA_VERSION = 1
#: Files no task refers to are left alone this long: a create in another process may be
#: between writing its image and committing its row, or a render may be mid-write.
ORPHAN_GRACE_SECONDS = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id         TEXT PRIMARY KEY,
    created_ns      INTEGER NOT NULL,
    finishes_ns     INTEGER NOT NULL,
    render_key      TEXT NOT NULL,
    start_sha       TEXT,
    end_sha         TEXT,
    cancelled_ns    INTEGER,
    render_error    TEXT,
    render_error_ns INTEGER,
    record          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_ns);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""

_COLUMNS = ("task_id", "created_ns", "finishes_ns", "render_key", "start_sha", "end_sha", "cancelled_ns",
            "render_error", "render_error_ns", "record")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM tasks"


class StateVersionError(SimulatorError):
    """The state folder was written by a newer framepack_widgets."""


@dataclass(frozen=True)
class TaskRow:
    """One stored task, as read back."""

    task_id: str
    created_ns: int
    finishes_ns: int  # wall ns when its clock ends (completed, failed or cancelled by then)
    render_key: str
    start_sha: str | None
    end_sha: str | None
    cancelled_ns: int | None
    render_error: str | None
    render_error_ns: int | None
    record: dict[str, Any]


@dataclass(frozen=True)
class PruneResult:
    """What `Simulator.prune_state()` removed."""

    tasks: int
    files: int
    bytes: int


def _row(values: Sequence[Any]) -> TaskRow:
    data = dict(zip(_COLUMNS, values))
    data["record"] = json.loads(data["record"])
    return TaskRow(**data)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all; mkstemp makes it 0600, private to the user."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _unlink(path: Path) -> int:
    """Remove a file; returns the bytes freed (0 when it was already gone)."""
    try:
        size = path.stat().st_size
        path.unlink()
        return size
    except FileNotFoundError:
        return 0


class SimState(SharedConnection):
    """One state folder, opened by one simulator. Safe across threads and processes."""

    def __init__(self, folder: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.folder = Path(folder).expanduser()
        self.images_dir = self.folder / "images"
        self.files_dir = self.folder / "files"
        self.uploads_dir = self.folder / "uploads"
        self.db_path = self.folder / DB_NAME
        # Prompts, images and videos: private to the user (the run store's rule), also in a
        # folder that existed with looser modes, when it is a state folder (or empty).
        ours = not self.folder.exists() or self.db_path.exists() or not any(self.folder.iterdir())
        self.folder.mkdir(parents=True, exist_ok=True)
        if ours:
            private_folder(self.folder)
        for path in (self.images_dir, self.files_dir, self.uploads_dir):
            private_folder(path)
        self._lock = threading.RLock()
        self._db = connect_wal(self.db_path, busy_timeout=busy_timeout, where="the simulator's state_dir")
        try:
            private_database(self.db_path)
            self._create_schema()
        except BaseException:
            self._db.close()
            raise

    # ------------------------------------------------------------------ plumbing

    def _create_schema(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateVersionError(
                    f"The simulator state {self.db_path} has schema version {version}, but this "
                    f"framepack_widgets knows only up to {SCHEMA_VERSION}: upgrade framepack-widgets, "
                    "or give the simulator another state_dir."
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"SimState({str(self.folder)!r})"

    # ------------------------------------------------------------------ images

    def image_path(self, sha256: str) -> Path:
        return self.images_dir / sha256

    def load_image(self, sha256: str) -> bytes:
        """The stored bytes; FileNotFoundError when they were pruned or deleted."""
        return self.image_path(sha256).read_bytes()

    # ------------------------------------------------------------------ tasks

    def add_task(self, row: TaskRow, images: Iterable[tuple[str, bytes]]) -> None:
        """Store a new task and its input images (each once, by sha256) in one transaction.

        The images are written under the write lock, so a concurrent prune cannot delete an
        image between this check and the row that refers to it.
        """
        record = json.dumps(row.record, ensure_ascii=False, separators=(",", ":"))
        with self._write() as db:
            for sha256, data in images:
                path = self.image_path(sha256)
                if not path.is_file():
                    _write_atomically(path, data)
            db.execute(
                f"INSERT INTO tasks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                (row.task_id, row.created_ns, row.finishes_ns, row.render_key, row.start_sha, row.end_sha,
                 row.cancelled_ns, row.render_error, row.render_error_ns, record),
            )

    def get_task(self, task_id: str) -> TaskRow | None:
        rows = self._query(f"{_SELECT} WHERE task_id = ?", (task_id,))
        return _row(rows[0]) if rows else None

    def all_tasks(self) -> list[TaskRow]:
        return [_row(values) for values in self._query(f"{_SELECT} ORDER BY created_ns")]

    def cancelled_ns(self, task_id: str) -> int | None:
        rows = self._query("SELECT cancelled_ns FROM tasks WHERE task_id = ?", (task_id,))
        return rows[0][0] if rows else None

    def cancel(self, task_id: str, when_ns: int) -> int | None:
        """Mark the task cancelled (first cancel wins); returns the stored cancel time."""
        with self._write() as db:
            db.execute("UPDATE tasks SET cancelled_ns = ? WHERE task_id = ? AND cancelled_ns IS NULL",
                       (when_ns, task_id))
            row = db.execute("SELECT cancelled_ns FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return row[0] if row else None

    def set_render_error(self, task_ids: Sequence[str], message: str, when_ns: int) -> None:
        """Record that these tasks' video could not be rendered (so every process fails them alike)."""
        if not task_ids:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE tasks SET render_error = ?, render_error_ns = ? WHERE task_id = ? AND render_error IS NULL",
                [(message, when_ns, task_id) for task_id in task_ids],
            )

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str, *, only_if_missing: bool = False) -> str:
        """Store a value; with only_if_missing, keep an existing one. Returns the stored value."""
        with self._write() as db:
            if only_if_missing:
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            return db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    # ------------------------------------------------------------------ size and pruning

    def size_bytes(self) -> int:
        """Bytes on disk: the database, images, videos and uploads."""
        total = 0
        for path in self.folder.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                pass
        return total

    def prune(self, *, created_before_ns: int, now_ns: int | None = None,
              grace_seconds: float = ORPHAN_GRACE_SECONDS) -> tuple[list[str], PruneResult]:
        """Delete tasks created before `created_before_ns` whose clock has ended, and the files
        only they used; also uploads that old and stray files older than `grace_seconds`.

        Returns the removed task ids and a summary.
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        wall_cutoff = created_before_ns / 1e9
        grace_cutoff = now_ns / 1e9 - grace_seconds
        freed = files = 0
        with self._write() as db:
            doomed = db.execute(
                "SELECT task_id, render_key, start_sha, end_sha FROM tasks "
                "WHERE created_ns < ? AND (finishes_ns <= ? OR cancelled_ns IS NOT NULL)",
                (created_before_ns, now_ns),
            ).fetchall()
            db.executemany("DELETE FROM tasks WHERE task_id = ?", [(row[0],) for row in doomed])
            keys = {key for (key,) in db.execute("SELECT DISTINCT render_key FROM tasks")}
            shas = {sha for (sha,) in db.execute(
                "SELECT start_sha FROM tasks UNION SELECT end_sha FROM tasks") if sha}
            # Files the pruned tasks used and no remaining task uses: gone at once.
            for _, key, *images in doomed:
                if key not in keys:
                    size = _unlink(self.files_dir / f"{key}.mp4")
                    freed, files = freed + size, files + (size > 0)
                    _unlink(self.files_dir / f"{key}.lock")  # the render lock (empty)
                for sha in images:
                    if sha and sha not in shas:
                        size = _unlink(self.image_path(sha))
                        freed, files = freed + size, files + (size > 0)
            # Strays (a process killed mid-write, an image whose task row never committed):
            # only once they are older than the grace period.
            kept_files = {f"{k}{suffix}" for k in keys for suffix in (".mp4", ".lock")}
            for folder, keep in ((self.images_dir, shas), (self.files_dir, kept_files)):
                for path in folder.iterdir():
                    if path.name in keep or not path.is_file():
                        continue
                    try:
                        if path.stat().st_mtime < grace_cutoff:
                            size = _unlink(path)
                            freed, files = freed + size, files + (size > 0)
                    except OSError:
                        pass
        for path in self.uploads_dir.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < min(wall_cutoff, now_ns / 1e9):
                    size = _unlink(path)
                    freed, files = freed + size, files + (size > 0)
            except OSError:
                pass
        return [row[0] for row in doomed], PruneResult(len(doomed), files, freed)
