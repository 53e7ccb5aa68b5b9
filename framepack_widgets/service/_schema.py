"""The service's tables, one list of migrations for SQLite and PostgreSQL alike.

Each migration is a list of statements in the SQL both databases speak (TEXT, BIGINT,
INTEGER, UNIQUE, indexes); `meta.schema_version` says how many have been applied. A new
version appends a migration, never edits one.

- `students`: one row per student who ever asked for anything; `budget_micros` NULL means
  the class's budget. The reservation locks this row, so one student's creates queue while
  different students' go on in parallel.
- `tasks`: one row per create the service accepted. `state` is the service's view
  (submitting, active, completed, failed, cancelled, unknown, refused); `reserved_micros`
  holds the price while the outcome is open, `charged_micros` is what a completed task cost.
  (owner, idempotency_key) is unique: a repeated create finds the first.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE students (
            name TEXT PRIMARY KEY,
            budget_micros BIGINT,
            created_ns BIGINT NOT NULL
        )""",
        """CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL REFERENCES students (name),
            idempotency_key TEXT,
            request_sha TEXT NOT NULL,
            task_id TEXT UNIQUE,
            state TEXT NOT NULL,
            status TEXT,
            price_micros BIGINT NOT NULL,
            reserved_micros BIGINT NOT NULL,
            charged_micros BIGINT NOT NULL DEFAULT 0,
            duration INTEGER NOT NULL,
            prompt TEXT NOT NULL,
            negative_prompt TEXT NOT NULL DEFAULT '',
            data TEXT,
            error TEXT,
            answer TEXT,
            shared INTEGER NOT NULL DEFAULT 0,
            video TEXT,
            created_ns BIGINT NOT NULL,
            updated_ns BIGINT NOT NULL,
            ended_ns BIGINT,
            UNIQUE (owner, idempotency_key)
        )""",
        "CREATE INDEX tasks_owner_state ON tasks (owner, state)",
        "CREATE INDEX tasks_state ON tasks (state)",
        "CREATE INDEX tasks_shared ON tasks (shared)",
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)
