"""The two database back ends of `Records`: SQLite (stdlib) and Postgres (psycopg + pool).

Both run the same statements, written with ``?`` placeholders (Postgres gets ``%s``), and
the same schema; only the column types, the id column and the id-list predicate differ.
A back end hands out `Cursor` objects inside a transaction (`transaction()`), which is
the only way statements run: one lock-protected connection for SQLite, a small pool of
reused connections for Postgres.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

__all__ = ["Backend", "Cursor", "PostgresBackend", "SqliteBackend"]

Row = tuple[Any, ...]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS emails (
    id {id}, subject TEXT NOT NULL, body TEXT NOT NULL, slug TEXT NOT NULL UNIQUE,
    created_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS lists (
    id {id}, name TEXT NOT NULL, created_at {real} NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    id {id}, list_id {int} NOT NULL REFERENCES lists (id), address TEXT NOT NULL,
    UNIQUE (list_id, address));
CREATE TABLE IF NOT EXISTS deliveries (
    email_id {int} NOT NULL REFERENCES emails (id),
    recipient_id {int} NOT NULL REFERENCES recipients (id),
    state TEXT NOT NULL CHECK (state IN
        ('queued', 'sending', 'sent', 'rejected', 'unknown', 'deferred')),
    provider TEXT, detail TEXT NOT NULL DEFAULT '', updated_at {real} NOT NULL,
    PRIMARY KEY (email_id, recipient_id));
CREATE TABLE IF NOT EXISTS analytics (
    email_id {int} PRIMARY KEY REFERENCES emails (id), data TEXT NOT NULL,
    as_of {real} NOT NULL, refreshed_at {real} NOT NULL);
"""


class Cursor(Protocol):
    """What a statement runs on, inside one transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; its rows (empty for statements without any)."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row (batched by the driver)."""
        ...


class Backend(Protocol):
    """A database the records live in."""

    label: str

    def transaction(self) -> contextlib.AbstractContextManager[Cursor]:
        """A cursor inside a transaction: committed on a clean exit, rolled back on error."""
        ...

    def any_of(self, column: str) -> str:
        """A predicate true when `column` is one of the ids passed as one parameter."""
        ...

    def id_list(self, ids: Sequence[int]) -> object:
        """The parameter `any_of` expects for `ids`."""
        ...

    def migrate(self) -> None:
        """Create the tables if they are missing (safe to run from several processes)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class _SqliteCursor:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._connection.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(sql, (tuple(row) for row in rows))


class SqliteBackend:
    """One SQLite connection shared by every thread behind a lock (WAL for files)."""

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.label = f"sqlite:{path}"
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        self._connection.execute("PRAGMA foreign_keys = ON")
        if path != ":memory:" and not path.startswith("file::memory:"):
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = NORMAL")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteCursor(self._connection)
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def any_of(self, column: str) -> str:
        return f"{column} IN (SELECT value FROM json_each(?))"

    def id_list(self, ids: Sequence[int]) -> object:
        return json.dumps([int(i) for i in ids])

    def migrate(self) -> None:
        script = _SCHEMA.format(id="INTEGER PRIMARY KEY AUTOINCREMENT", int="INTEGER", real="REAL")
        with self._lock:
            self._connection.executescript(script)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _PostgresCursor:
    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self._sql(sql), tuple(params))
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(self._sql(sql), [tuple(row) for row in rows])


class PostgresBackend:
    """Postgres through a small pool of reused connections (psycopg_pool)."""

    def __init__(
        self,
        dsn: str,
        *,
        max_connections: int = 8,
        connect_timeout: int = 5,
        statement_timeout: float = 30.0,
    ) -> None:
        from psycopg_pool import ConnectionPool

        self.label = "postgres"
        self.dsn = dsn
        self._pool: ConnectionPool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            kwargs={
                "connect_timeout": connect_timeout,
                "application_name": "sendguard-pipeline",
                "options": f"-c statement_timeout={int(statement_timeout * 1000)}",
            },
            open=False,
            name="sendguard-pipeline",
        )
        self._pool.open(wait=True, timeout=max(connect_timeout, 1) * 2)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with (
            self._pool.connection() as connection,
            connection.transaction(),
            connection.cursor() as cursor,
        ):
            yield _PostgresCursor(cursor)

    def any_of(self, column: str) -> str:
        return f"{column} = ANY(?)"

    def id_list(self, ids: Sequence[int]) -> object:
        return [int(i) for i in ids]

    def migrate(self) -> None:
        script = _SCHEMA.format(
            id="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            int="BIGINT",
            real="DOUBLE PRECISION",
        )
        with self.transaction() as cursor:
            # Two processes creating the tables at once would collide on the catalog.
            cursor.execute("SELECT pg_advisory_xact_lock(?)", (0x5E9D_0001,))
            for statement in script.split(";"):
                if statement.strip():
                    cursor.execute(statement)

    def close(self) -> None:
        self._pool.close()
