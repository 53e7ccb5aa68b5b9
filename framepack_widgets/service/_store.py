"""The class's state: students, budgets, tasks and their money, over SQLite or PostgreSQL.

One interface for both databases (`_databases`). The rule everything here protects: the
price of a create is reserved in the same transaction that checks the budget, the pause,
the running cap and the idempotency key, before anything is forwarded, so concurrent
creates can never pass a budget and a repeated key finds the first create. A reservation
ends one way: charged (completed), released (failed, cancelled, refused before a task
existed), or kept (the outcome is unknown: shown to the teacher, never resent).

Methods are synchronous and short; the service calls them from a thread pool.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ._databases import Database, open_database

__all__ = ["RUNNING_STATES", "Reservation", "Store", "StudentSummary", "TaskRow"]

#: The states of a create that count against the running cap (the others: completed, failed,
#: cancelled, refused, unknown).
RUNNING_STATES = ("submitting", "active")

_COLUMNS = ("id, owner, idempotency_key, request_sha, task_id, state, status, price_micros, reserved_micros, "
            "charged_micros, duration, prompt, negative_prompt, data, error, answer, shared, video, created_ns, "
            "updated_ns, ended_ns")


@dataclass(frozen=True)
class TaskRow:
    """One create the service accepted, as stored."""

    id: str
    owner: str
    idempotency_key: str | None
    request_sha: str
    task_id: str | None
    state: str
    status: str | None
    price_micros: int
    reserved_micros: int
    charged_micros: int
    duration: int
    prompt: str
    negative_prompt: str
    data: dict[str, Any] | None
    error: str | None
    answer: dict[str, Any] | None  # a refusal's answer (status, message), for a duplicate that waited
    shared: bool
    video: str | None
    created_ns: int
    updated_ns: int
    ended_ns: int | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "TaskRow":
        values = list(row)
        values[13] = json.loads(values[13]) if values[13] else None
        values[15] = json.loads(values[15]) if values[15] else None
        values[16] = bool(values[16])
        for index in (7, 8, 9, 10, 18, 19):
            values[index] = int(values[index])
        return cls(*values)

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


@dataclass(frozen=True)
class Reservation:
    """What a create's reservation found: `kind` is new, existing, paused, over_budget or busy."""

    kind: str
    row: TaskRow | None = None
    budget_micros: int = 0
    left_micros: int = 0
    running: int = 0


@dataclass(frozen=True)
class StudentSummary:
    name: str
    budget_micros: int
    own_budget: bool  # False: the class's budget applies
    spent_micros: int
    reserved_micros: int
    running: int
    unknown: int

    @property
    def left_micros(self) -> int:
        return max(0, self.budget_micros - self.spent_micros - self.reserved_micros)


class Store:
    """The service's database: open with `Store.open(url)`, close with `close()`."""

    def __init__(self, database: Database) -> None:
        self._db = database

    @classmethod
    def open(cls, url: str) -> "Store":
        return cls(open_database(url))

    @property
    def kind(self) -> str:
        return self._db.kind

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        rows = self._db.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM meta WHERE key = ?", (key,))
            if value is not None:
                tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def secret(self, key: str) -> str:
        """A random secret kept in the database (made once, the same for every later start)."""
        with self._db.transaction() as tx:
            rows = tx.execute("SELECT value FROM meta WHERE key = ?" + self._db.for_update, (key,))
            if rows:
                return str(rows[0][0])
            value = secrets.token_urlsafe(32)
            tx.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
            return value

    def class_budget(self, default_micros: int) -> int:
        """The class's budget per student: the teacher's, else the service's option."""
        value = self.get_meta("class_budget_micros")
        return int(value) if value is not None else default_micros

    def set_class_budget(self, value_micros: int | None) -> None:
        self.set_meta("class_budget_micros", None if value_micros is None else str(int(value_micros)))

    def paused(self) -> bool:
        return self.get_meta("paused") == "1"

    def set_paused(self, paused: bool) -> None:
        self.set_meta("paused", "1" if paused else "0")

    # ------------------------------------------------------------------ the reservation

    def reserve(
        self,
        *,
        owner: str,
        idempotency_key: str | None,
        request_sha: str,
        price_micros: int,
        duration: int,
        prompt: str,
        negative_prompt: str,
        default_budget_micros: int,
        max_running: int,
    ) -> Reservation:
        """Check and hold the price of one create, in one transaction.

        In this order: a known idempotency key returns its create (whatever else changed);
        a paused class, a budget the price would pass, and the running cap refuse; otherwise
        the create is stored as `submitting` with its price reserved.
        """
        now = time.time_ns()
        with self._db.transaction() as tx:
            self._lock_student(tx, owner, now)
            budget_rows = tx.execute("SELECT budget_micros FROM students WHERE name = ?", (owner,))
            if idempotency_key is not None:
                found = tx.execute(f"SELECT {_COLUMNS} FROM tasks WHERE owner = ? AND idempotency_key = ?",
                                   (owner, idempotency_key))
                if found:
                    return Reservation("existing", TaskRow.from_row(found[0]))
            if self._paused(tx):
                return Reservation("paused")
            own = budget_rows[0][0] if budget_rows else None
            class_rows = tx.execute("SELECT value FROM meta WHERE key = 'class_budget_micros'")
            budget = int(own) if own is not None else (int(class_rows[0][0]) if class_rows else default_budget_micros)
            held, running = tx.execute(
                "SELECT COALESCE(SUM(reserved_micros + charged_micros), 0), "
                "COALESCE(SUM(CASE WHEN state IN ('submitting', 'active') THEN 1 ELSE 0 END), 0) "
                "FROM tasks WHERE owner = ?", (owner,))[0]
            left = budget - int(held)
            if price_micros > left:
                return Reservation("over_budget", budget_micros=budget, left_micros=max(0, left), running=int(running))
            if int(running) >= max_running:
                return Reservation("busy", budget_micros=budget, left_micros=left, running=int(running))
            row_id = uuid.uuid4().hex
            tx.execute(
                "INSERT INTO tasks (id, owner, idempotency_key, request_sha, state, price_micros, reserved_micros, "
                "duration, prompt, negative_prompt, created_ns, updated_ns) "
                "VALUES (?, ?, ?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?)",
                (row_id, owner, idempotency_key, request_sha, price_micros, price_micros, duration, prompt,
                 negative_prompt, now, now))
            row = TaskRow.from_row(tx.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (row_id,))[0])
            return Reservation("new", row, budget_micros=budget, left_micros=left - price_micros,
                               running=int(running) + 1)

    def _lock_student(self, tx: Any, owner: str, now: int) -> None:
        """Make sure the student has a row, and lock it for the transaction (PostgreSQL; SQLite's
        write transaction already runs alone)."""
        tx.execute("INSERT INTO students (name, created_ns) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (owner, now))
        tx.execute("SELECT name FROM students WHERE name = ?" + self._db.for_update, (owner,))

    @staticmethod
    def _paused(tx: Any) -> bool:
        rows = tx.execute("SELECT value FROM meta WHERE key = 'paused'")
        return bool(rows) and rows[0][0] == "1"

    # ------------------------------------------------------------------ a create's outcome

    def created(self, row_id: str, task_id: str, status: str | None, data: dict[str, Any] | None) -> TaskRow:
        """PiAPI made the task: it is active (its price stays reserved until it ends)."""
        return self._change(
            "UPDATE tasks SET task_id = ?, state = 'active', status = ?, data = ?, updated_ns = ? "
            "WHERE id = ? AND state = 'submitting'",
            (task_id, status, _json(data), time.time_ns(), row_id), row_id)

    def refused(self, row_id: str, answer: dict[str, Any]) -> TaskRow:
        """PiAPI refused before making a task: release the price, and free the key for a new try."""
        return self._change(
            "UPDATE tasks SET state = 'refused', reserved_micros = 0, idempotency_key = NULL, answer = ?, "
            "error = ?, updated_ns = ?, ended_ns = ? WHERE id = ? AND state = 'submitting'",
            (_json(answer), str(answer.get("message") or ""), time.time_ns(), time.time_ns(), row_id), row_id)

    def unknown(self, row_id: str, error: str) -> TaskRow:
        """The create may or may not have made a task: keep the price reserved, never resend."""
        return self._change(
            "UPDATE tasks SET state = 'unknown', error = ?, updated_ns = ? WHERE id = ? AND state = 'submitting'",
            (error, time.time_ns(), row_id), row_id)

    def interrupted(self) -> list[TaskRow]:
        """Creates a previous run of the service was forwarding when it stopped: their outcome is
        unknown now (they are never resent)."""
        with self._db.transaction() as tx:
            rows = [TaskRow.from_row(r) for r in tx.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE state = 'submitting'" + self._db.for_update)]
            tx.execute("UPDATE tasks SET state = 'unknown', error = ?, updated_ns = ? WHERE state = 'submitting'",
                       ("the service stopped while forwarding this create", time.time_ns()))
        return rows

    def observed(self, task_id: str, status: str, data: dict[str, Any] | None, final: str | None,
                 error: str | None = None) -> TaskRow | None:
        """A fresh look at an active task. `final` (completed, failed, cancelled) ends it: a
        completed task is charged its price, a failed or cancelled one releases it. Only an
        active task changes, so a task is charged once, whatever arrives twice."""
        now = time.time_ns()
        if final is None:
            sql = "UPDATE tasks SET status = ?, data = ?, updated_ns = ? WHERE task_id = ? AND state = 'active'"
            params: tuple[Any, ...] = (status, _json(data), now, task_id)
        else:
            charged = "price_micros" if final == "completed" else "0"
            sql = (f"UPDATE tasks SET state = ?, status = ?, data = ?, error = ?, reserved_micros = 0, "
                   f"charged_micros = {charged}, updated_ns = ?, ended_ns = ? WHERE task_id = ? AND state = 'active'")
            params = (final, status, _json(data), error, now, now, task_id)
        with self._db.transaction() as tx:
            tx.execute(sql, params)
            rows = tx.execute(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
        return TaskRow.from_row(rows[0]) if rows else None

    def lost(self, task_id: str, error: str) -> None:
        """PiAPI no longer knows an active task: its outcome is unknown (the price stays reserved)."""
        with self._db.transaction() as tx:
            tx.execute("UPDATE tasks SET state = 'unknown', error = ?, updated_ns = ? WHERE task_id = ? AND "
                       "state = 'active'", (error, time.time_ns(), task_id))

    def set_video(self, task_id: str, name: str | None, error: str | None = None) -> None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE tasks SET video = ?, error = COALESCE(?, error), updated_ns = ? WHERE task_id = ?",
                       (name, error, time.time_ns(), task_id))

    def set_shared(self, task_id: str, shared: bool) -> TaskRow | None:
        with self._db.transaction() as tx:
            tx.execute("UPDATE tasks SET shared = ?, updated_ns = ? WHERE task_id = ?",
                       (1 if shared else 0, time.time_ns(), task_id))
            rows = tx.execute(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
        return TaskRow.from_row(rows[0]) if rows else None

    def _change(self, sql: str, params: tuple[Any, ...], row_id: str) -> TaskRow:
        with self._db.transaction() as tx:
            tx.execute(sql, params)
            rows = tx.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (row_id,))
        return TaskRow.from_row(rows[0])

    # ------------------------------------------------------------------ reads

    def row(self, row_id: str) -> TaskRow | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (row_id,))
        return TaskRow.from_row(rows[0]) if rows else None

    def task(self, task_id: str) -> TaskRow | None:
        """The create that made PiAPI task `task_id`."""
        rows = self._db.query(f"SELECT {_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
        return TaskRow.from_row(rows[0]) if rows else None

    def tasks(self, *, owner: str | None = None, states: tuple[str, ...] | None = None, shared: bool | None = None,
              limit: int = 1000) -> list[TaskRow]:
        """Creates, newest first, filtered by owner, state and share flag."""
        where, params = [], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if states:
            where.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        if shared is not None:
            where.append("shared = ?")
            params.append(1 if shared else 0)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.query(f"SELECT {_COLUMNS} FROM tasks{clause} ORDER BY created_ns DESC LIMIT ?",
                              (*params, int(limit)))
        return [TaskRow.from_row(r) for r in rows]

    def account(self, owner: str, default_budget_micros: int) -> StudentSummary:
        """One student's money: budget, spent (charged), reserved, running."""
        found = [s for s in self.students(default_budget_micros, names=(owner,)) if s.name == owner]
        if found:
            return found[0]
        return StudentSummary(owner, self.class_budget(default_budget_micros), False, 0, 0, 0, 0)

    def students(self, default_budget_micros: int, *, names: tuple[str, ...] | None = None) -> list[StudentSummary]:
        """Every student's budget, spend, reservations and running count (by name)."""
        class_budget = self.class_budget(default_budget_micros)
        where, params = "", ()
        if names:
            where = f" WHERE s.name IN ({', '.join('?' for _ in names)})"
            params = tuple(names)
        rows = self._db.query(
            "SELECT s.name, s.budget_micros, COALESCE(SUM(t.charged_micros), 0), COALESCE(SUM(t.reserved_micros), 0), "
            "COALESCE(SUM(CASE WHEN t.state IN ('submitting', 'active') THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN t.state = 'unknown' THEN 1 ELSE 0 END), 0) "
            f"FROM students s LEFT JOIN tasks t ON t.owner = s.name{where} GROUP BY s.name, s.budget_micros "
            "ORDER BY s.name", params)
        return [StudentSummary(name, int(own) if own is not None else class_budget, own is not None, int(spent),
                               int(reserved), int(running), int(unknown))
                for name, own, spent, reserved, running, unknown in rows]

    def register(self, owner: str) -> None:
        """A student the teacher's list shows from their first request on (before any create)."""
        with self._db.transaction() as tx:
            tx.execute("INSERT INTO students (name, created_ns) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                       (owner, time.time_ns()))

    def set_budget(self, owner: str, value_micros: int | None) -> None:
        """A student's own budget (None: back to the class's)."""
        now = time.time_ns()
        with self._db.transaction() as tx:
            self._lock_student(tx, owner, now)
            tx.execute("UPDATE students SET budget_micros = ? WHERE name = ?",
                       (None if value_micros is None else int(value_micros), owner))


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
