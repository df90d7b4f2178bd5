"""The ledger in Postgres: one row per entry, in a table made by `migrate`.

    from sendguard.jobs import Ledger
    from sendguard.jobs.postgres_store import PostgresLedgerStore, migrate

    migrate(DSN)                                   # once, from a deploy step
    ledger = Ledger(PostgresLedgerStore(DSN), name="sends")

This module imports psycopg (``sendguard[postgres]``). A new key costs one statement
(``INSERT ... ON CONFLICT DO NOTHING RETURNING``); every other transition is one short
transaction that locks the row (``SELECT ... FOR UPDATE``), applies the transition from
`sendguard.jobs._ledger_core` and writes the row back. Time is the server's clock
(``clock_timestamp()``), in milliseconds. Rows past their retention (``expires_ms``)
count as absent; `PostgresLedgerStore.purge_expired` deletes them.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard.jobs import _ledger_core as core
from sendguard.jobs._ledger_core import Decision, EntryState, LedgerEntry, Record

__all__ = ["DEFAULT_TABLE", "PostgresLedgerStore", "migrate"]

T = TypeVar("T")
Change = Callable[[Record | None, int], tuple[T, Record | None, float | None]]
"""A transition: (the locked record or None, now ms) -> (result, record to write, retention)."""
DEFAULT_TABLE = "sendguard_ledger"
_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?")
_COLUMNS = (
    "key, state, fingerprint, token, lease_until, attempts, result, result_digest, "
    "detail, updated_ms, created_ms"
)
_SERVER_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint"

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    ledger        text    NOT NULL,
    key           text    NOT NULL,
    state         text    NOT NULL
                  CHECK (state IN ('in_progress', 'completed', 'failed', 'unknown')),
    fingerprint   text    NOT NULL,
    token         text    NOT NULL,
    lease_until   bigint  NOT NULL DEFAULT 0,
    attempts      integer NOT NULL DEFAULT 1,
    result        text,
    result_digest text    NOT NULL DEFAULT '',
    detail        text    NOT NULL DEFAULT '',
    created_ms    bigint  NOT NULL,
    updated_ms    bigint  NOT NULL,
    expires_ms    bigint,
    PRIMARY KEY (ledger, key)
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (ledger, state, updated_ms)
    WHERE state IN ('in_progress', 'unknown');
"""


def _table(name: str) -> sql.Composable:
    if not _IDENT.fullmatch(name):
        raise ConfigError(f"ledger table must be a plain [schema.]name, got {name!r}")
    return sql.Identifier(*name.split("."))


def migrate(target: str | psycopg.Connection[Any], *, table: str = DEFAULT_TABLE) -> None:
    """Create the ledger table and its index if they do not exist (safe to run again)."""
    index = sql.Identifier(table.split(".")[-1] + "_open")
    ddl = sql.SQL(_DDL).format(table=_table(table), index=index)
    if isinstance(target, str):
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(ddl)
    else:
        with target.transaction():
            target.execute(ddl)


def _record(row: tuple[Any, ...]) -> Record:
    key, state, fp, token, lease, attempts, result, digest, detail, updated, created = row[:11]
    return Record(
        key,
        EntryState(state),
        fp,
        token,
        int(lease),
        int(attempts),
        result,
        digest,
        detail,
        int(updated),
        int(created),
    )


class PostgresLedgerStore:
    """Ledger entries in a Postgres table (made by `migrate`), shared by every process.

    Args:
        conninfo: a DSN; the store keeps one connection (autocommit, `timeout`-second
            connect and statement timeouts) and serialises its use. Or pass `pool` (a
            ``psycopg_pool.ConnectionPool``) for many threads.
        table: the table `migrate` made.
        time_ms: a source of milliseconds instead of the server's clock (tests).
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        pool: Any = None,
        table: str = DEFAULT_TABLE,
        timeout: float = 2.0,
        time_ms: Callable[[], int] | None = None,
    ) -> None:
        if conninfo is None and pool is None:
            raise ValueError("PostgresLedgerStore needs a conninfo or a pool")
        self.label = "postgres"
        self.table = table
        self._t = _table(table)
        self._conninfo = conninfo
        self._pool = pool
        self._timeout = timeout
        self._time_ms = time_ms
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    # --- connections and errors ----------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            if self._pool is not None:
                with self._pool.connection() as conn:
                    yield conn
                return
            with self._lock:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(
                        self._conninfo or "",
                        autocommit=True,
                        connect_timeout=max(1, round(self._timeout)),
                        options=f"-c statement_timeout={round(self._timeout * 1000)}",
                    )
                yield self._conn
        except psycopg.errors.UndefinedTable as exc:
            raise ConfigError(
                f"ledger table {self.table!r} does not exist: run "
                f"sendguard.jobs.postgres_store.migrate(...) first ({exc})"
            ) from exc
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if self._conn is not None:
                self._conn.close()
            raise StoreUnavailable(f"postgres ledger store: {exc}") from exc

    def _now_sql(self) -> sql.Composable:
        return sql.SQL(_SERVER_NOW if self._time_ms is None else str(int(self._time_ms())))

    def _transition(self, ledger: str, key: str, change: Change[T]) -> tuple[T, Record | None, int]:
        """Lock the row, apply `change`, write back the record it returns (if any).

        Returns `change`'s result, the record as it now stands, and the server's time.
        """
        query = sql.SQL(
            "SELECT {cols}, {now}, expires_ms FROM {t} WHERE ledger = %s AND key = %s FOR UPDATE"
        ).format(cols=sql.SQL(_COLUMNS), now=self._now_sql(), t=self._t)
        for _ in range(3):
            try:
                with self._connection() as conn, conn.transaction():
                    row = conn.execute(query, (ledger, key)).fetchone()
                    if row is None:
                        found = conn.execute(
                            sql.SQL("SELECT {}").format(self._now_sql())
                        ).fetchone()
                        assert found is not None
                        now, record = int(found[0]), None
                    else:
                        now = int(row[11])
                        expired = row[12] is not None and int(row[12]) <= now
                        record = None if expired else _record(row)
                    result, written, retention = change(record, now)
                    if written is not None:
                        self._write(conn, ledger, written, now, retention)
                    return result, written or record, now
            except psycopg.errors.UniqueViolation:
                continue  # a concurrent first use inserted the row: decide again on it
        raise StoreUnavailable(f"postgres ledger store: key {key!r} kept changing under us")

    def _write(
        self,
        conn: psycopg.Connection[Any],
        ledger: str,
        record: Record | None,
        now: int,
        retention: float | None,
    ) -> None:
        assert record is not None
        expires = None if retention is None else now + round(retention * 1000)
        conn.execute(
            sql.SQL(
                "INSERT INTO {t} (ledger, {cols}, expires_ms) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (ledger, key) DO UPDATE SET state = excluded.state, "
                "fingerprint = excluded.fingerprint, token = excluded.token, "
                "lease_until = excluded.lease_until, attempts = excluded.attempts, "
                "result = excluded.result, result_digest = excluded.result_digest, "
                "detail = excluded.detail, updated_ms = excluded.updated_ms, "
                "created_ms = excluded.created_ms, expires_ms = excluded.expires_ms"
            ).format(t=self._t, cols=sql.SQL(_COLUMNS)),
            (
                ledger,
                record.key,
                record.state.value,
                record.fingerprint,
                record.token,
                record.lease_until,
                record.attempts,
                record.result,
                record.digest,
                record.detail,
                record.updated,
                record.created,
                expires,
            ),
        )

    # --- the contract -------------------------------------------------------------------

    def begin(
        self,
        ledger: str,
        key: str,
        fingerprint: str,
        token: str,
        lease: float,
        retry_abandoned: bool,
    ) -> tuple[Decision, LedgerEntry]:
        lease_ms = round(lease * 1000)
        fresh = sql.SQL(
            "INSERT INTO {t} (ledger, key, state, fingerprint, token, lease_until, attempts, "
            "result_digest, detail, created_ms, updated_ms) SELECT %s, %s, 'in_progress', %s, "
            "%s, n.now + %s, 1, '', '', n.now, n.now FROM (SELECT {now} AS now) AS n "
            "ON CONFLICT (ledger, key) DO NOTHING RETURNING {cols}"
        ).format(t=self._t, now=self._now_sql(), cols=sql.SQL(_COLUMNS))
        with self._connection() as conn:
            row = conn.execute(fresh, (ledger, key, fingerprint, token, lease_ms)).fetchone()
        if row is not None:  # a new key: the attempt holds it (what core.begin(None) gives)
            created = _record(row)
            return Decision.STARTED, created.entry(created.updated)

        def change(record: Record | None, now: int) -> tuple[Decision, Record | None, None]:
            decision, after = core.begin(
                record, key, fingerprint, token, now, lease_ms, retry_abandoned
            )
            changed = decision in (Decision.STARTED, Decision.UNKNOWN)
            return decision, after if changed else None, None

        decision, record, now = self._transition(ledger, key, change)
        assert record is not None
        return decision, record.entry(now)

    def finish(
        self,
        ledger: str,
        key: str,
        token: str,
        state: EntryState,
        result: str | None,
        digest: str,
        detail: str,
        retention: float,
    ) -> tuple[bool, LedgerEntry | None]:
        def change(record: Record | None, now: int) -> tuple[bool, Record | None, float | None]:
            done = core.finish(record, token, state, result, digest, detail, now)
            keep = None if state is EntryState.UNKNOWN else retention
            return done, record if done else None, keep

        return self._applied(ledger, key, change)

    def renew(
        self, ledger: str, key: str, token: str, lease: float
    ) -> tuple[bool, LedgerEntry | None]:
        def change(record: Record | None, now: int) -> tuple[bool, Record | None, None]:
            done = core.renew(record, token, round(lease * 1000), now)
            return done, record if done else None, None

        return self._applied(ledger, key, change)

    def resolve(
        self, ledger: str, key: str, state: EntryState, detail: str, retention: float
    ) -> tuple[bool, LedgerEntry | None]:
        def change(record: Record | None, now: int) -> tuple[bool, Record | None, float]:
            done = core.resolve(record, state, detail, now)
            return done, record if done else None, retention

        return self._applied(ledger, key, change)

    def _applied(
        self, ledger: str, key: str, change: Change[bool]
    ) -> tuple[bool, LedgerEntry | None]:
        done, record, now = self._transition(ledger, key, change)
        return done, None if record is None else record.entry(now)

    def get(self, ledger: str, key: str) -> LedgerEntry | None:
        query = sql.SQL(
            "SELECT {cols}, {now}, expires_ms FROM {t} WHERE ledger = %s AND key = %s"
        ).format(cols=sql.SQL(_COLUMNS), now=self._now_sql(), t=self._t)
        with self._connection() as conn:
            row = conn.execute(query, (ledger, key)).fetchone()
        if row is None or (row[12] is not None and int(row[12]) <= int(row[11])):
            return None
        return _record(row).entry(int(row[11]))

    def unknowns(self, ledger: str, limit: int = 100) -> list[LedgerEntry]:
        """Abandoned leases become UNKNOWN (the SQL form of `core.expire`), then the list."""
        now = self._now_sql()
        expire = sql.SQL(
            "UPDATE {t} SET state = 'unknown', detail = %s, updated_ms = {now}, lease_until = 0 "
            "WHERE ledger = %s AND state = 'in_progress' AND lease_until <= {now}"
        ).format(t=self._t, now=now)
        select = sql.SQL(
            "SELECT {cols}, {now} FROM {t} WHERE ledger = %s AND state = 'unknown' "
            "ORDER BY updated_ms, key LIMIT %s"
        ).format(cols=sql.SQL(_COLUMNS), now=now, t=self._t)
        with self._connection() as conn:
            conn.execute(expire, (core.ABANDONED, ledger))
            rows = conn.execute(select, (ledger, limit)).fetchall()
        return [_record(row).entry(int(row[11])) for row in rows]

    def purge_expired(self) -> int:
        """Delete rows past their retention; returns how many (run it from a cron job)."""
        query = sql.SQL("DELETE FROM {t} WHERE expires_ms <= {now}").format(
            t=self._t, now=self._now_sql()
        )
        with self._connection() as conn:
            return conn.execute(query).rowcount

    def close(self) -> None:
        """Close the store's own connection (a pool is the caller's to close)."""
        if self._conn is not None:
            self._conn.close()
