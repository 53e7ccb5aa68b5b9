"""The run store's SQLite schema: its migrations and how a `Run.to_dict()` becomes a row.

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[v]` brings a store from
version v to v + 1 (append, never edit). The runs table keeps the keys of `Run.to_dict()`
(a few derived ones are columns for queries) and who drives the run; its status history
is the `run_events` table; `images` describes the normalised input images kept in the folder.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from .record import UNFINISHED_STAGES, as_time

__all__ = [
    "COLUMNS", "CONDITIONAL_UPDATE", "INSERT_COLUMNS", "MIGRATIONS", "RECORD_COLUMNS", "SCHEMA_VERSION",
    "SELECT_RUNS", "UNFINISHED", "UPDATABLE", "UPSERT", "dumps_json", "from_row", "to_row",
]


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one inside the caller's transaction (executescript would COMMIT it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_0_to_1(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS runs (
            run_id          TEXT PRIMARY KEY,
            seq             INTEGER NOT NULL,
            created_at      REAL NOT NULL,
            updated_at      REAL NOT NULL,
            stage           TEXT NOT NULL,
            status          TEXT,
            task_id         TEXT,
            prompt          TEXT NOT NULL DEFAULT '',
            negative_prompt TEXT NOT NULL DEFAULT '',
            duration        INTEGER,
            start_image_sha TEXT,
            end_image_sha   TEXT,
            params          TEXT NOT NULL DEFAULT '{}',
            percent         REAL,
            logs            TEXT NOT NULL DEFAULT '[]',
            error           TEXT,
            hint            TEXT,
            cost_usd        REAL,
            backend         TEXT,
            sweep_id        TEXT,
            submitted_at    REAL,
            finished_at     REAL,
            video_sha       TEXT,
            video_url       TEXT,
            owner           TEXT,
            heartbeat_at    REAL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS runs_seq ON runs (seq DESC);
        CREATE INDEX IF NOT EXISTS runs_stage ON runs (stage);
        CREATE INDEX IF NOT EXISTS runs_sweep ON runs (sweep_id) WHERE sweep_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS runs_task ON runs (task_id) WHERE task_id IS NOT NULL;
        CREATE TABLE IF NOT EXISTS run_events (
            id      INTEGER PRIMARY KEY,
            run_id  TEXT NOT NULL,
            at      REAL NOT NULL,
            stage   TEXT NOT NULL,
            status  TEXT,
            percent REAL
        );
        CREATE INDEX IF NOT EXISTS run_events_run ON run_events (run_id, id);
        CREATE TABLE IF NOT EXISTS images (
            sha256     TEXT PRIMARY KEY,
            mime       TEXT,
            width      INTEGER,
            height     INTEGER,
            bytes      INTEGER,
            created_at REAL NOT NULL
        );
        """
    )


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    """Runs that continue another (`parent_id`), timeline segments, and the API's own status word."""
    _run_script(
        db,
        """
        ALTER TABLE runs ADD COLUMN parent_id TEXT;
        ALTER TABLE runs ADD COLUMN timeline_id TEXT;
        ALTER TABLE runs ADD COLUMN segment INTEGER;
        ALTER TABLE runs ADD COLUMN status_word TEXT;
        CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS runs_timeline ON runs (timeline_id, segment) WHERE timeline_id IS NOT NULL
        """,
    )


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """The notebook a run came from (history shows a notebook's own runs first), and an index
    on the creation time (a day's spend is summed over the runs created that day)."""
    _run_script(
        db,
        """
        ALTER TABLE runs ADD COLUMN notebook TEXT;
        CREATE INDEX IF NOT EXISTS runs_notebook ON runs (notebook, seq DESC) WHERE notebook IS NOT NULL;
        CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at)
        """,
    )


#: MIGRATIONS[v] brings a store from schema version v to v + 1. Append, never edit.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2, _migrate_2_to_3]
SCHEMA_VERSION = len(MIGRATIONS)

#: The runs table: the keys of `Run.to_dict()` it keeps (a few derived ones are columns for
#: queries), then who drives the run. Times are stored as epoch seconds, lists as JSON.
RECORD_COLUMNS = (
    "run_id", "seq", "created_at", "updated_at", "stage", "status", "task_id", "prompt",
    "negative_prompt", "duration", "start_image_sha", "end_image_sha", "params", "percent",
    "logs", "error", "hint", "cost_usd", "backend", "sweep_id", "submitted_at", "finished_at",
    "video_sha", "video_url", "parent_id", "timeline_id", "segment", "status_word", "notebook",
)  # fmt: skip
COLUMNS = (*RECORD_COLUMNS, "owner", "heartbeat_at")
TIME_COLUMNS = frozenset({"created_at", "updated_at", "submitted_at", "finished_at"})
JSON_COLUMNS = frozenset({"params", "logs"})
SELECT_RUNS = f"SELECT {', '.join(RECORD_COLUMNS)} FROM runs"
UPDATABLE = [c for c in COLUMNS if c not in ("run_id", "seq", "created_at")]
INSERT_COLUMNS = [c for c in COLUMNS if c != "seq"]
UPSERT = (
    f"INSERT INTO runs (seq, {', '.join(INSERT_COLUMNS)}) "
    f"VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM runs), {', '.join('?' for _ in INSERT_COLUMNS)}) "
    f"ON CONFLICT (run_id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in UPDATABLE)}"
)
CONDITIONAL_UPDATE = (
    f"UPDATE runs SET {', '.join(f'{c} = ?' for c in UPDATABLE)} WHERE run_id = ? AND stage = ? AND owner IS ?"
)
UNFINISHED = tuple(stage.value for stage in UNFINISHED_STAGES)


def to_row(record: dict[str, Any]) -> dict[str, Any]:
    """A `Run.to_dict()` as column values: times as epoch seconds, lists as JSON."""
    row = {name: record[name] for name in RECORD_COLUMNS}
    for name in TIME_COLUMNS:
        value = as_time(row[name])
        row[name] = None if value is None else value.timestamp()
    for name in JSON_COLUMNS:
        row[name] = dumps_json(row[name])
    return row


def from_row(values: Sequence[Any]) -> dict[str, Any]:
    """Column values back as what `Run.from_dict()` reads (times stay epoch seconds)."""
    record = dict(zip(RECORD_COLUMNS, values))
    for name in JSON_COLUMNS:
        if record[name] is not None:
            record[name] = json.loads(record[name])
    return record


def dumps_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
