"""`RunStore`: every run on local disk, so a kernel restart (or two kernels at once) loses nothing.

Layout of the store folder (the argument, else $FRAMEPACK_HOME, else ./.framepack):

    runs.sqlite3              runs and their status history (SQLite, WAL mode)
    images/<sha256>.<ext>     normalised input images, stored once by content hash
    videos/<sha256>.mp4       downloaded results, stored once by content hash
    tmp/                      downloads in progress

Each save is one short write transaction (`BEGIN IMMEDIATE`), so several processes can
write at once; readers never block writers. The schema, its migrations and the row format
are `schema.py`. The API key is never stored. The folder is private to its user (0700,
files 0600); a damaged database is moved aside, never deleted. Light to import: no PIL,
numpy or av.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._sqlite import SharedConnection, connect_wal
from ..constants import IMAGE_EXT_MIME, IMAGE_MIME_EXT
from ..errors import FileMissingError, InvalidInputError, MissingDependencyError, RunNotFoundError
from .folder import (
    DB_SUFFIXES,
    StoreError,
    default_folder,
    folder_size,
    make_private_folders,
    move_damaged_aside,
    move_in,
    private_database,
    unusable,
    write_atomic,
)
from .record import Run, RunEvent, RunStage
from .schema import (
    CONDITIONAL_UPDATE,
    INSERT_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SELECT_RUNS,
    UNFINISHED,
    UPDATABLE,
    UPSERT,
    from_row,
    to_row,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..inputs import ImageSource
    from .eta import Estimate

__all__ = ["RunStore", "StoreError", "StoreVersionError", "SCHEMA_VERSION", "MIGRATIONS", "default_folder"]

DB_NAME = "runs.sqlite3"

log = logging.getLogger(__name__)
#: Files in videos/ that no run refers to are left alone this long (a download may be
#: between `add_video` and the save that records it).
ORPHAN_GRACE_SECONDS = 600.0


class StoreVersionError(StoreError):
    """The store was written by a newer framepack_widgets than this one."""


class RunStore(SharedConnection):
    """Runs and their files in one folder. Safe to share between threads and processes."""

    def __init__(self, folder: str | os.PathLike[str] | None = None, *, busy_timeout: float = 30.0) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_folder()
        self.images_dir = self.folder / "images"
        self.videos_dir = self.folder / "videos"
        self.tmp_dir = self.folder / "tmp"
        self.db_path = self.folder / DB_NAME
        #: Said once to the person when something about the store needed fixing on open
        #: (a damaged database moved aside); None otherwise.
        self.notice: str | None = None
        self._lock = threading.RLock()
        make_private_folders(self.folder, (self.images_dir, self.videos_dir, self.tmp_dir), self.db_path)
        try:
            self._db = self._open(busy_timeout)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise unusable(self.db_path, exc) from None
            self.notice = move_damaged_aside(self.db_path, exc)
            self._db = self._open(busy_timeout)

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        db = connect_wal(self.db_path, busy_timeout=busy_timeout, where="FRAMEPACK_HOME")
        try:
            private_database(self.db_path)
            self._db = db
            self._migrate()
        except BaseException:
            db.close()
            raise
        return db

    # ------------------------------------------------------------------ plumbing
    def _migrate(self) -> None:
        migrations = list(MIGRATIONS)
        target = len(migrations)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == target:
            return
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # again, under the write lock
            if version > target:
                raise StoreVersionError(
                    f"The run store {self.db_path} has schema version {version}, but this "
                    f"framepack_widgets only knows up to version {target}: it was written by a newer "
                    "version. Upgrade framepack-widgets (pip install -U framepack-widgets), or use "
                    "another folder (FRAMEPACK_HOME or RunStore(folder))."
                )
            for step in range(version, target):
                migrations[step](db)
            db.execute(f"PRAGMA user_version = {target}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.folder)!r})"

    # ------------------------------------------------------------------ runs
    def _row(self, run: Run, owner: str | None) -> dict[str, Any]:
        row = to_row(run.to_dict(history=False))
        row["updated_at"] = row["updated_at"] or time.time()
        row["owner"], row["heartbeat_at"] = owner, (time.time() if owner else None)
        return row

    def save(self, run: Run, *, owner: str | None = None, expect_stage: RunStage | None = None) -> bool:
        """Write the run and its new history entries in one transaction; `owner` is the
        Runner driving it (None: nobody).

        With `expect_stage`, the write happens only if the stored run is still in that stage
        and owned by `owner` (a compare-and-set); returns whether it was written.
        """
        row = self._row(run, owner)
        with self._write() as db:
            if expect_stage is not None:
                cursor = db.execute(
                    CONDITIONAL_UPDATE, [row[c] for c in UPDATABLE] + [run.run_id, expect_stage.value, owner]
                )
                if cursor.rowcount != 1:
                    return False
            else:
                db.execute(UPSERT, [row[c] for c in INSERT_COLUMNS])
            # History only grows: write the entries the store does not have yet.
            (saved,) = db.execute("SELECT COUNT(*) FROM run_events WHERE run_id = ?", (run.run_id,)).fetchone()
            events = run.new_events(saved)
            if events:
                db.executemany(
                    "INSERT INTO run_events (run_id, at, stage, status, percent) VALUES (?, ?, ?, ?, ?)",
                    [(run.run_id, e.at.timestamp(), e.stage.value, e.status.value if e.status else None, e.percent)
                     for e in events],
                )
            if run.seq is None:
                run.seq = db.execute("SELECT seq FROM runs WHERE run_id = ?", (run.run_id,)).fetchone()[0]
        if run.store is None:
            run.link(store=self, runner=run.runner)
        return True

    def _runs(self, rows: Sequence[Sequence[Any]]) -> list[Run]:
        """Runs from rows of `SELECT_RUNS` (each reads its history from here on first use)."""
        runs = []
        for row in rows:
            record = from_row(row)
            sha = record["video_sha"]
            path = self.video_path_for(sha) if sha else None
            record["video_path"] = path if path is not None and path.exists() else None
            runs.append(Run.from_dict(record).link(store=self))
        return runs

    def history(self, run_id: str) -> list[RunEvent]:
        """A run's status history, oldest first."""
        rows = self._query("SELECT at, stage, status, percent FROM run_events WHERE run_id = ? ORDER BY id", (run_id,))
        return [
            RunEvent.from_dict({"at": at, "stage": stage, "status": status, "percent": percent})
            for at, stage, status, percent in rows
        ]

    def get(self, run_id: str) -> Run:
        """The stored run (a fresh object; its images load on first use)."""
        runs = self._runs(self._query(f"{SELECT_RUNS} WHERE run_id = ?", (run_id,)))
        if not runs:
            raise RunNotFoundError(f"no run {run_id!r} in the store at {self.folder}: take a run id from "
                                   "store.list() (or widget.runs).")
        return runs[0]

    def list(
        self,
        limit: int | None = 50,
        offset: int = 0,
        *,
        before: int | None = None,
        sweep_id: str | None = None,
        stages: Sequence[RunStage | str] | None = None,
        notebook: str | None = None,
    ) -> list[Run]:
        """Runs newest first. Page with `limit`/`offset`, or faster with `before=<seq of the
        last run shown>` (keyset pagination: constant time however deep the page). `notebook`:
        only the runs started from that notebook (`Run.notebook`)."""
        where, params = self._where(before=before, sweep_id=sweep_id, stages=stages, notebook=notebook)
        rows = self._query(
            f"{SELECT_RUNS}{where} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else int(limit), int(offset)],
        )
        return self._runs(rows)

    def count(self, *, sweep_id: str | None = None, stages: Sequence[RunStage | str] | None = None,
              notebook: str | None = None) -> int:
        where, params = self._where(sweep_id=sweep_id, stages=stages, notebook=notebook)
        return int(self._query(f"SELECT COUNT(*) FROM runs{where}", params)[0][0])

    def __len__(self) -> int:
        return self.count()

    @staticmethod
    def _where(
        *, before: int | None = None, sweep_id: str | None = None, stages: Sequence[RunStage | str] | None = None,
        notebook: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if notebook is not None:
            clauses.append("notebook = ?")
            params.append(notebook)
        if before is not None:
            clauses.append("seq < ?")
            params.append(int(before))
        if sweep_id is not None:
            clauses.append("sweep_id = ?")
            params.append(sweep_id)
        if stages is not None:
            values = [RunStage.parse(s).value for s in stages]
            clauses.append(f"stage IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def unfinished(self) -> list[Run]:
        """Runs still moving or waiting for the person (QUEUED .. DOWNLOADING, SUBMISSION_UNKNOWN,
        TIMED_OUT), oldest first. Only `Runner.resume()` decides what is safe to continue."""
        rows = self._query(
            f"{SELECT_RUNS} WHERE stage IN ({', '.join('?' for _ in UNFINISHED)}) ORDER BY seq ASC", UNFINISHED
        )
        return self._runs(rows)

    def created_since(self, since: float, *, backend: str) -> list[tuple[RunStage, str | None, str | None, int | None]]:
        """(stage, task id, owner, duration) of every `backend` run created at or after `since`
        (epoch seconds): what `budget.Budget` adds up for a day's spend."""
        rows = self._query(
            "SELECT stage, task_id, owner, duration FROM runs WHERE created_at >= ? AND COALESCE(backend, 'piapi') = ?",
            (float(since), backend),
        )
        return [(RunStage.parse(stage), task_id, owner, duration) for stage, task_id, owner, duration in rows]

    # ------------------------------------------------------------------ ownership (which Runner drives a run)
    def ownership(self, run_id: str) -> tuple[str | None, float | None]:
        rows = self._query("SELECT owner, heartbeat_at FROM runs WHERE run_id = ?", (run_id,))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def claim(self, run_id: str, owner: str, is_stale: Callable[[str | None, float | None, str], bool]) -> bool:
        """Atomically become the run's owner, if its current owner is `owner` or gone (`is_stale`)."""
        with self._write() as db:
            row = db.execute("SELECT owner, heartbeat_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return False
            if row[0] != owner and not is_stale(row[0], row[1], run_id):
                return False
            db.execute("UPDATE runs SET owner = ?, heartbeat_at = ? WHERE run_id = ?", (owner, time.time(), run_id))
            return True

    def heartbeat(self, run_ids: Sequence[str], owner: str) -> None:
        if not run_ids:
            return
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND owner = ?",
                [(time.time(), run_id, owner) for run_id in run_ids],
            )

    # ------------------------------------------------------------------ images
    def put_image(self, source: "ImageSource") -> Path | None:
        """Store a normalised image once (by content hash); URLs are not stored. Returns its path."""
        data = source.data
        if data is None:
            return None
        path = self.images_dir / f"{source.sha256}.{IMAGE_MIME_EXT.get(source.mime or '', 'bin')}"
        if not path.exists():
            write_atomic(self.tmp_dir, path, data)
            with self._write() as db:
                db.execute(
                    "INSERT OR IGNORE INTO images (sha256, mime, width, height, bytes, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (source.sha256, source.mime, source.width, source.height, len(data), time.time()),
                )
        return path

    def image_path(self, sha256: str) -> Path | None:
        """The stored file of a normalised image, or None."""
        for ext in (*IMAGE_MIME_EXT.values(), "bin"):
            path = self.images_dir / f"{sha256}.{ext}"
            if path.exists():
                return path
        return None

    def image_bytes(self, sha256: str) -> bytes:
        path = self.image_path(sha256)
        if path is None:
            raise FileMissingError(
                f"image {sha256[:12]} is missing from {self.images_dir}; the store folder may have "
                "been cleaned. Pick the image again and start a new run."
            )
        return path.read_bytes()

    def load_image(self, sha256: str, info: dict[str, Any] | None = None) -> "ImageSource":
        """The stored normalised image as an `ImageSource` (its hash is checked on load)."""
        from ..inputs import ImageSource

        data = self.image_bytes(sha256)
        meta = dict(info or {})
        if not meta.get("mime") or meta.get("width") is None:
            rows = self._query("SELECT mime, width, height FROM images WHERE sha256 = ?", (sha256,))
            if rows:
                meta = {"mime": rows[0][0], "width": rows[0][1], "height": rows[0][2], **{k: v for k, v in meta.items() if v}}
        path = self.image_path(sha256)
        mime = meta.get("mime") or IMAGE_EXT_MIME.get(path.suffix.lstrip(".") if path else "", "image/jpeg")
        return ImageSource(data=data, mime=mime, width=meta.get("width"), height=meta.get("height"), sha256=sha256)

    def image_source(self, info: dict[str, Any]) -> "ImageSource":
        """Rebuild the `ImageSource` described by `FramepackInput.to_params()`."""
        return self.load_image(str(info["sha256"]), info)

    # ------------------------------------------------------------------ videos
    def video_path_for(self, sha256: str) -> Path:
        return self.videos_dir / f"{sha256}.mp4"

    def temp_path(self, name: str) -> Path:
        """A path in the store's tmp/ folder (same disk, so `add_video` can rename it in)."""
        return self.tmp_dir / Path(name).name

    def add_video(self, path: str | os.PathLike[str]) -> Path:
        """Move a downloaded video into videos/<sha256>.mp4 (kept once per content) and return it."""
        src = Path(path)
        digest = hashlib.sha256()
        with src.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        final = self.video_path_for(digest.hexdigest())
        if final.exists():
            src.unlink()
            return final
        move_in(src, final, self.tmp_dir)
        return final

    def size_bytes(self) -> int:
        """Bytes used on disk: database (with its WAL), images, videos and downloads in progress."""
        database = [Path(f"{self.db_path}{suffix}") for suffix in DB_SUFFIXES]
        return folder_size(database, (self.images_dir, self.videos_dir, self.tmp_dir))

    def prune_videos(
        self,
        *,
        keep_last: int | None = None,
        older_than: timedelta | datetime | None = None,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Delete local videos, on request only; returns what was (or, with dry_run, would be) removed.

        keep_last=N keeps the videos of the N newest runs that have one; older_than keeps those
        of runs finished more recently than that. Given both, a video is removed only when both
        say so. The runs stay in the store; their hint says the video was removed.
        """
        if keep_last is None and older_than is None:
            raise InvalidInputError("say what to prune: keep_last=N and/or older_than=timedelta(days=...) (or a datetime)")
        if keep_last is not None and keep_last < 0:
            raise InvalidInputError(f"keep_last must be 0 or more (got {keep_last}).")
        cutoff: float | None = None
        if isinstance(older_than, timedelta):
            cutoff = time.time() - older_than.total_seconds()
        elif isinstance(older_than, datetime):
            cutoff = (older_than if older_than.tzinfo else older_than.replace(tzinfo=timezone.utc)).timestamp()
        rows = self._query(
            "SELECT run_id, video_sha, COALESCE(finished_at, updated_at) FROM runs "
            "WHERE video_sha IS NOT NULL ORDER BY seq DESC"
        )
        keep: set[str] = set()
        runs_of: dict[str, list[str]] = {}
        for index, (run_id, sha, finished) in enumerate(rows):
            runs_of.setdefault(sha, []).append(run_id)
            by_count = keep_last is not None and index < keep_last
            by_age = cutoff is not None and finished is not None and finished >= cutoff
            if by_count or by_age:
                keep.add(sha)
        removed: list[dict[str, Any]] = []
        now = time.time()
        for entry in sorted(os.scandir(self.videos_dir), key=lambda e: e.name):
            if not entry.name.endswith(".mp4"):
                continue
            sha = entry.name[: -len(".mp4")]
            if sha in keep:
                continue
            stat = entry.stat()
            if sha not in runs_of:  # not recorded (yet): leave recent ones alone
                if now - stat.st_mtime < ORPHAN_GRACE_SECONDS or (cutoff is not None and stat.st_mtime >= cutoff):
                    continue
            removed.append({"sha256": sha, "path": entry.path, "bytes": stat.st_size, "run_ids": runs_of.get(sha, [])})
        if dry_run or not removed:
            return removed
        note = f"The local video was removed by prune_videos() on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."
        for item in removed:
            try:
                os.remove(item["path"])
            except FileNotFoundError:
                pass
        with self._write() as db:
            db.executemany(
                "UPDATE runs SET hint = ? WHERE video_sha = ?", [(note, item["sha256"]) for item in removed]
            )
        return removed

    # ------------------------------------------------------------------ export and estimates
    def to_dicts(self, limit: int | None = None, *, history: bool = False, **filters: Any) -> list[dict[str, Any]]:
        """The history as plain JSON-safe dicts, newest first."""
        return [run.to_dict(history=history) for run in self.list(limit=limit, **filters)]

    def to_dataframe(self, limit: int | None = None, **filters: Any) -> Any:
        """The history as a pandas DataFrame (needs pandas: pip install pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependencyError("to_dataframe() needs pandas: pip install pandas (to_dicts() needs nothing)") from None
        rows = self.to_dicts(limit, **filters)
        for row in rows:
            row.pop("params", None)
            row["logs"] = len(row["logs"])
        frame = pd.DataFrame(rows)
        for column in ("created_at", "updated_at", "submitted_at", "finished_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    def eta_samples(self, *, backend: str | None = None, recent: int = 200) -> list[tuple[float, float, str]]:
        """`(duration, wall_time_seconds, backend)` of the newest completed runs, for `eta`."""
        sql = (
            "SELECT duration, finished_at - submitted_at, COALESCE(backend, 'piapi') FROM runs "
            "WHERE stage = 'completed' AND submitted_at IS NOT NULL AND finished_at IS NOT NULL AND duration > 0"
        )
        params: list[Any] = []
        if backend is not None:
            sql += " AND backend = ?"
            params.append(backend)
        rows = self._query(sql + " ORDER BY seq DESC LIMIT ?", [*params, int(recent)])
        return [(float(d), float(w), str(b)) for d, w, b in rows if w is not None and w > 0]

    def estimate(self, duration: int, *, backend: str = "piapi", **kwargs: Any) -> "Estimate":
        """An `eta.Estimate` for a run of `duration` seconds, learned from this store's finished runs."""
        from .eta import estimate_wall_time

        return estimate_wall_time(duration, self.eta_samples(backend=backend), backend=backend, **kwargs)

    def estimate_seconds(self, duration: int, *, backend: str = "piapi") -> float | None:
        """Seconds a run is likely to take, learned from history; None while there is too little."""
        try:
            estimate = self.estimate(duration, backend=backend)
        except ImportError:  # pragma: no cover - eta.py is part of the package
            return None
        return float(estimate.seconds) if estimate.basis == "history" else None

    def integrity_check(self) -> str:
        """SQLite's own check: 'ok' when the database is sound."""
        return str(self._query("PRAGMA integrity_check")[0][0])
