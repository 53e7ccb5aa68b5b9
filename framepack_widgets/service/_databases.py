"""The two databases under the store: SQLite (embedded, the default) and PostgreSQL (psycopg 3).

Both give the store the same three things: a write transaction that serialises what must be
serialised, a read, and the SQL dialect's one difference that matters here (`FOR UPDATE`).
SQLite takes its write lock up front (BEGIN IMMEDIATE), so every write transaction runs
alone; PostgreSQL runs transactions side by side and the store locks the one student row a
reservation is about. Statements are written with `?` placeholders; PostgreSQL's `%s` are
put in here. Migrations run under a lock on either, so two services starting at once over
one database apply each migration once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from .._sqlite import connect_wal
from ..errors import FramepackError
from ._schema import MIGRATIONS

__all__ = ["Database", "DatabaseError", "Transaction", "describe", "open_database"]

Row = tuple[Any, ...]


class DatabaseError(FramepackError):
    """The service's database could not be opened or used; the message says which and why."""


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Database(Protocol):
    kind: str  # "sqlite" | "postgresql"
    for_update: str  # appended to a SELECT that locks the rows it reads

    def transaction(self) -> AbstractContextManager[Transaction]: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def close(self) -> None: ...


def describe(url: str) -> str:
    """The database's address for messages and logs: never its password."""
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres") and parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def open_database(url: str) -> "Database":
    """`postgresql://...` (or `postgres://`) opens PostgreSQL; a path or `sqlite:///path` SQLite."""
    text = str(url).strip()
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        database: Database = PostgresDatabase(text)
    elif scheme == "sqlite":
        path = unquote(urlsplit(text).path)
        if text.lower().startswith("sqlite:////"):
            path = "/" + path.lstrip("/")
        elif text.lower().startswith("sqlite:///"):
            path = path[1:] if path.startswith("/") else path
        database = SQLiteDatabase(Path(path))
    elif scheme and len(scheme) > 1:  # a drive letter is not a scheme
        raise DatabaseError(
            f"--db {describe(text)}: give a PostgreSQL URL (postgresql://user@host/db) or an SQLite file "
            "(a path, or sqlite:///path)."
        )
    else:
        database = SQLiteDatabase(Path(text))
    try:
        migrate(database)
    except BaseException:
        database.close()
        raise
    return database


def migrate(database: "Database") -> int:
    """Apply the migrations this database lacks; returns its schema version."""
    with database.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    with database.transaction() as tx:
        if database.kind == "postgresql":  # one migrating service at a time (SQLite's BEGIN IMMEDIATE is one)
            tx.execute("SELECT pg_advisory_xact_lock(7013017)")
        rows = tx.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        version = int(rows[0][0]) if rows else 0
        if version > len(MIGRATIONS):
            raise DatabaseError(
                f"the service's database is at schema version {version}, newer than this framepack_widgets "
                f"knows ({len(MIGRATIONS)}): upgrade framepack_widgets rather than use an older one over it."
            )
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                tx.execute(statement)
        if version < len(MIGRATIONS):
            tx.execute("DELETE FROM meta WHERE key = 'schema_version'")
            tx.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(len(MIGRATIONS)),))
    return len(MIGRATIONS)


class _SQLiteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(sql, tuple(params)).fetchall()


class SQLiteDatabase:
    """One WAL connection shared by the service's threads; a write transaction runs alone."""

    kind = "sqlite"
    for_update = ""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path.touch(mode=0o600, exist_ok=True)  # students' names and prompts: the service's alone
            self._db = connect_wal(self.path, busy_timeout=30.0, where="the service's --db")
            self._db.execute("PRAGMA foreign_keys = ON")
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(
                f"cannot open the service's SQLite database {self.path} ({type(exc).__name__}: {exc}); "
                "give --db a writable path on a local disk."
            ) from None
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTransaction]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTransaction(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _PostgresTransaction:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._connection.execute(sql.replace("?", "%s"), tuple(params))
        return cursor.fetchall() if cursor.description is not None else []


class PostgresDatabase:
    """A psycopg connection pool; each transaction takes a connection for its length."""

    kind = "postgresql"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, *, max_size: int = 8) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise DatabaseError(
                "PostgreSQL needs psycopg 3 and psycopg-pool: pip install 'framepack-widgets[service]'."
            ) from None
        self.url = url
        self._errors = (psycopg.Error,)
        try:
            psycopg.connect(url, connect_timeout=10).close()  # fail now, with a message, not after the pool's wait
            self._pool = ConnectionPool(url, min_size=1, max_size=max_size, kwargs={"autocommit": True},
                                        open=True, timeout=30, name="framepack-service")
            self._pool.wait(timeout=30)
        except Exception as exc:  # noqa: BLE001 - psycopg's and the pool's errors alike
            raise DatabaseError(
                f"cannot reach the service's PostgreSQL database {describe(url)} ({type(exc).__name__}: "
                f"{str(exc).strip() or 'no answer'}); check --db and that the server is up."
            ) from None

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTransaction]:
        with self._pool.connection() as connection:
            with connection.transaction():
                yield _PostgresTransaction(connection)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._pool.connection() as connection:
            cursor = connection.execute(sql.replace("?", "%s"), tuple(params))
            return cursor.fetchall() if cursor.description is not None else []

    def close(self) -> None:
        self._pool.close()
