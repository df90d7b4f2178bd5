"""The reserved admin connection: one Postgres session kept open for the bad day.

When every ordinary slot is taken, only a role allowed into the reserved slots still gets
in: on Postgres 16+ a member of ``pg_use_reserved_connections`` (``reserved_connections``
slots), a superuser (``superuser_reserved_connections`` slots) before that. Opening the
connection *before* the slots run out, and keeping it, means the saturation probe and
the operator commands never need the resource that is exhausted. docs/health.md has the
SQL that sets the roles up.

The connection is autocommit, has a short ``statement_timeout`` and TCP keepalives, and
is shared by its users under a lock (one statement at a time). When it breaks it is
reopened on the next use, but not more often than a jittered backoff allows (a
`StoreGate`), so a database that is down costs one connect timeout, then fast failures
(`AdminUnavailable`) until the backoff ends.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, SendguardError
from sendguard._core.store import StoreGate
from sendguard._core.telemetry import Hook, Telemetry
from sendguard.health._probe import describe_error

if TYPE_CHECKING:
    import psycopg

__all__ = ["AdminConnection", "AdminUnavailable"]


class AdminUnavailable(SendguardError):
    """The admin connection is down and could not be reopened (or is backing off)."""


_ROLE_SQL = """
SELECT r.rolname::text, r.rolsuper,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'),
       pg_has_role(current_user, 'pg_signal_backend', 'USAGE'){reserved}
FROM pg_roles r WHERE r.rolname = current_user
"""
_RESERVED_16 = ",\n       pg_has_role(current_user, 'pg_use_reserved_connections', 'USAGE')"


class AdminConnection:
    """One long-lived Postgres connection for saturation checks and operator commands.

    Args:
        dsn: a role allowed into reserved slots (see docs/health.md).
        statement_timeout: seconds any statement may run.
        connect_timeout: whole seconds to wait for a connection (libpq's minimum is 2).
        backoff_base: seconds to wait after a failed connection before trying again;
            doubles (with jitter) with each failure in a row.
        backoff_cap: the longest wait, in seconds, between reconnection attempts.
        hooks: telemetry hooks for its down/recovered events.
    """

    def __init__(
        self,
        dsn: str,
        *,
        application_name: str = "sendguard-admin",
        statement_timeout: float = 5.0,
        connect_timeout: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise ConfigError(f"AdminConnection.dsn must be a connection string, got {dsn!r}")
        if not (isinstance(statement_timeout, int | float) and 0 < statement_timeout <= 3600):
            raise ConfigError(
                "AdminConnection.statement_timeout must be in (0, 3600] s, "
                f"got {statement_timeout!r}"
            )
        if not isinstance(connect_timeout, int) or connect_timeout < 1:
            raise ConfigError(
                "AdminConnection.connect_timeout must be whole seconds >= 1, "
                f"got {connect_timeout!r}"
            )
        self.dsn = dsn
        self.application_name = application_name
        self.statement_timeout = float(statement_timeout)
        self.connect_timeout = connect_timeout
        self.telemetry = Telemetry(hooks)
        self._gate = StoreGate(
            "postgres-admin", "health", self.telemetry, clock=clock, base=backoff_base,
            cap=backoff_cap, rng=rng,
        )  # fmt: skip
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self.last_error: str | None = None
        self.backend_pid: int | None = None
        self.server_version: int | None = None
        self.role: str | None = None
        self.superuser = False
        self.reads_all_stats = False
        self.signals_backends = False
        self.reserved_access: str | None = None
        """How this role gets into a full server: ``"superuser"``,
        ``"pg_use_reserved_connections"``, or None (it does not)."""

    @property
    def connected(self) -> bool:
        """Whether the connection is open (as far as the client knows)."""
        conn = self._conn
        return conn is not None and not conn.closed

    def connect(self) -> None:
        """Open the connection now (ignoring the backoff); raises `AdminUnavailable`."""
        with self._lock:
            if not self.connected:
                self._open()

    def _open(self) -> None:
        import psycopg

        milliseconds = max(1, round(self.statement_timeout * 1000))
        try:
            conn = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=self.connect_timeout,
                application_name=self.application_name,
                options=f"-c statement_timeout={milliseconds}",
                keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
            )  # fmt: skip
        except psycopg.Error as error:
            raise self._refused(error) from error
        version = conn.info.server_version
        reserved = _RESERVED_16 if version >= 160000 else ""
        try:
            row = conn.execute(_ROLE_SQL.format(reserved=reserved).encode()).fetchone()
        except psycopg.Error as error:
            conn.close()
            raise self._refused(error) from error
        assert row is not None
        self._conn = conn
        self.backend_pid = conn.info.backend_pid
        self.server_version = version
        self.role, self.superuser = str(row[0]), bool(row[1])
        self.reads_all_stats, self.signals_backends = bool(row[2]), bool(row[3])
        if self.superuser:
            self.reserved_access = "superuser"
        elif len(row) > 4 and row[4]:
            self.reserved_access = "pg_use_reserved_connections"
        else:
            self.reserved_access = None
        self.last_error = None
        self._gate.succeeded()

    def _refused(self, error: BaseException) -> AdminUnavailable:
        self.last_error = describe_error(error)
        self._gate.failed(error)
        return AdminUnavailable(f"cannot open the admin connection: {self.last_error}")

    def execute(
        self, sql: str | bytes, params: Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows (none for a statement without any).

        Reopens a broken connection when the backoff allows; raises `AdminUnavailable`
        when it cannot, and psycopg's own error for a statement that fails on a working
        connection (a permission denied, a statement timeout).
        """
        import psycopg

        query = sql.encode() if isinstance(sql, str) else sql
        with self._lock:
            if not self.connected:
                if not self._gate.available():
                    raise AdminUnavailable(
                        "the admin connection is down and backing off before the next "
                        f"attempt; last error: {self.last_error}"
                    )
                self._open()
            conn = self._conn
            assert conn is not None
            try:
                cursor = conn.execute(query, params)
                return list(cursor.fetchall()) if cursor.description is not None else []
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                if not conn.closed and not conn.broken:
                    raise  # the statement failed (a timeout, a cancel); the session is fine
                self._drop(error)
                raise AdminUnavailable(f"the admin connection broke: {self.last_error}") from error

    def _drop(self, error: BaseException) -> None:
        self.last_error = describe_error(error)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.backend_pid = None
        self._gate.failed(error)

    def close(self) -> None:
        """Close the connection (a later `execute` reopens it)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
            self.backend_pid = None

    def __enter__(self) -> AdminConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.backend_pid}" if self.connected else "closed"
        return f"AdminConnection({self.role or '?'}, {state})"
