"""Postgres readiness through a fresh connection, and the application's psycopg_pool.

`PostgresProbe` opens a new connection for every check, never one from the application's
pool: a pool that already holds connections keeps working while Postgres refuses new
ones, and that is how a static health check stayed green through incident #3. The check
uses the application's own role (a superuser would slip into the reserved slots and see
nothing wrong: the probe warns when it finds itself connected as one), bounds the
connection by ``connect_timeout`` and the query by ``statement_timeout``, and names the
reason when Postgres refuses: libpq reports a refused connection as a plain
``OperationalError`` with no SQLSTATE, so the reason is read from the server's message.

`PoolProbe` reads the pool's own statistics (``get_stats``) and reports requests waiting
for a connection, their average wait and the errors since the last check; it also
publishes the pool as the OpenTelemetry ``db.client.connection.*`` metrics.
"""

from __future__ import annotations

import enum
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from sendguard._core.errors import ConfigError
from sendguard._core.telemetry import register_observable
from sendguard.health._probe import BaseProbe, describe_error
from sendguard.health._result import Detail, ProbeResult, Status, Thresholds

__all__ = [
    "PoolLike",
    "PoolProbe",
    "PostgresProbe",
    "Refusal",
    "classify_connect_error",
    "instrument_pool",
]


class Refusal(enum.Enum):
    """Why Postgres (or the way to it) refused a new connection."""

    SLOTS_EXHAUSTED = "slots_exhausted"
    ROLE_LIMIT = "role_limit"
    DATABASE_LIMIT = "database_limit"
    NOT_ACCEPTING = "not_accepting"
    AUTHENTICATION = "authentication"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    OTHER = "other"

    @property
    def description(self) -> str:
        """What the refusal means, in a few words."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Refusal.SLOTS_EXHAUSTED: "connection slots exhausted (max_connections reached)",
    Refusal.ROLE_LIMIT: "the role's CONNECTION LIMIT is reached",
    Refusal.DATABASE_LIMIT: "the database's CONNECTION LIMIT is reached",
    Refusal.NOT_ACCEPTING: "the server is not accepting connections (starting, stopping, "
    "or in recovery)",
    Refusal.AUTHENTICATION: "authentication failed",
    Refusal.TIMEOUT: "the connection timed out",
    Refusal.UNREACHABLE: "the server cannot be reached",
    Refusal.OTHER: "the connection failed",
}

# Server messages (FATAL lines) and libpq's own, lower-cased; the first match wins.
_MARKERS: tuple[tuple[Refusal, tuple[str, ...]], ...] = (
    (Refusal.SLOTS_EXHAUSTED, ("sorry, too many clients already",
                               "remaining connection slots are reserved")),
    (Refusal.ROLE_LIMIT, ("too many connections for role",)),
    (Refusal.DATABASE_LIMIT, ("too many connections for database",)),
    (Refusal.NOT_ACCEPTING, ("the database system is starting up", "is shutting down",
                             "in recovery mode", "not yet accepting connections",
                             "not accepting connections")),
    (Refusal.AUTHENTICATION, ("authentication failed", "no pg_hba.conf entry",
                              "password authentication", "does not exist")),
    (Refusal.TIMEOUT, ("timeout expired", "timed out", "connection timeout")),
    (Refusal.UNREACHABLE, ("connection refused", "could not translate host name",
                           "no route to host", "network is unreachable",
                           "server closed the connection unexpectedly",
                           "name or service not known")),
)  # fmt: skip


def classify_connect_error(error: BaseException | str) -> Refusal:
    """Why a connection attempt failed, from its message (libpq gives no SQLSTATE here)."""
    text = str(error).lower()
    for refusal, markers in _MARKERS:
        if any(marker in text for marker in markers):
            return refusal
    if getattr(error, "sqlstate", None) == "53300":  # too_many_connections, if ever set
        return Refusal.SLOTS_EXHAUSTED
    return Refusal.OTHER


def _server_words(error: BaseException) -> str:
    """The part of a connection error that the server (or libpq) said, on one line."""
    text = " ".join(str(error).split())
    found = re.search(r"\b(FATAL|ERROR):\s*(.*)$", text)
    if found:
        return f"{found.group(1)}: {found.group(2)}"
    return text.rsplit(" failed: ", 1)[-1] or describe_error(error)


def _with_statement_timeout(dsn: str, milliseconds: int) -> dict[str, Any]:
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    options = str(params.get("options") or "")
    params["options"] = f"{options} -c statement_timeout={milliseconds}".strip()
    return params


_LATENCY = Thresholds.above(warn=1.0)
_WAITING = Thresholds.above(warn=1)
_AVERAGE_WAIT_MS = Thresholds.above(warn=100, fail=1000)


class PostgresProbe(BaseProbe):
    """Readiness through a fresh connection with the application's own DSN.

    Args:
        dsn: the application's connection string (its role, not a superuser).
        query: run once per check (default ``SELECT 1``).
        latency: thresholds on connect + query time, in seconds (default: warn at 1 s).
        connect_timeout: seconds (libpq's minimum is 2; default the larger of 2 and the
            probe's timeout, rounded up).
        statement_timeout: seconds for the query (default: the probe's timeout).
        warn_if_superuser: warn when connected as a superuser (who may use the reserved
            slots, so would not see them run out).
    """

    component_type = "datastore"

    def __init__(
        self,
        dsn: str,
        *,
        name: str = "postgres",
        critical: bool = True,
        timeout: float = 2.0,
        query: str = "SELECT 1",
        latency: Thresholds = _LATENCY,
        connect_timeout: int | None = None,
        statement_timeout: float | None = None,
        application_name: str = "sendguard-health",
        warn_if_superuser: bool = True,
    ) -> None:
        super().__init__(name, critical=critical, timeout=timeout)
        if not isinstance(dsn, str) or not dsn:
            raise ConfigError(f"PostgresProbe.dsn must be a connection string, got {dsn!r}")
        if not isinstance(latency, Thresholds):
            raise ConfigError(f"PostgresProbe.latency must be Thresholds, got {latency!r}")
        self.connect_timeout = connect_timeout or max(2, math.ceil(self.timeout))
        if not isinstance(self.connect_timeout, int) or self.connect_timeout < 1:
            raise ConfigError(
                f"PostgresProbe.connect_timeout must be whole seconds >= 1, got {connect_timeout!r}"
            )
        statement = self.timeout if statement_timeout is None else statement_timeout
        if not (isinstance(statement, int | float) and 0 < statement <= 3600):
            raise ConfigError(
                f"PostgresProbe.statement_timeout must be in (0, 3600] seconds, got {statement!r}"
            )
        self.statement_timeout = float(statement)
        self.dsn = dsn
        self.query = query
        self.latency = latency
        self.application_name = application_name
        self.warn_if_superuser = warn_if_superuser

    def check(self) -> ProbeResult:
        """Connect, run the query, close; report the time taken or why it failed."""
        import psycopg

        params = _with_statement_timeout(self.dsn, max(1, round(self.statement_timeout * 1000)))
        started = time.perf_counter()
        try:
            conn = psycopg.connect(
                **params, connect_timeout=self.connect_timeout,
                application_name=self.application_name, autocommit=True,
            )  # fmt: skip
        except psycopg.OperationalError as error:
            refusal = classify_connect_error(error)
            return ProbeResult.failing(
                f"{refusal.description}: {_server_words(error)}",
                measurement="connection", details={"refusal": refusal.value},
            )  # fmt: skip
        try:
            with conn:
                conn.execute(self.query.encode()).fetchall()
                superuser = conn.info.parameter_status("is_superuser") == "on"
        except psycopg.Error as error:
            return ProbeResult.failing(
                f"connected, but the query failed: {_server_words(error)}",
                measurement="connection", details={"sqlstate": error.sqlstate},
            )  # fmt: skip
        elapsed = time.perf_counter() - started
        status = self.latency.judge(elapsed)
        message = "" if status is Status.PASS else f"connect + query took {elapsed * 1000:.0f} ms"
        if superuser and self.warn_if_superuser:
            status = Status.worst((status, Status.WARN))
            message = (
                "connected as a superuser, who may take the reserved slots: use the "
                "application's own role, so this probe is refused when the application is"
            )
        return ProbeResult(
            status, message, observed_value=round(elapsed * 1000, 2), observed_unit="ms",
            measurement="connection",
        )  # fmt: skip


class PoolLike(Protocol):
    """What `PoolProbe` needs from a pool: psycopg_pool's `get_stats` (and `name`)."""

    @property
    def name(self) -> str:
        """The pool's name."""
        ...

    def get_stats(self) -> Mapping[str, int]:
        """Counters and gauges of the pool (psycopg_pool's keys)."""
        ...


_DELTAS = ("requests_queued", "requests_wait_ms", "requests_errors", "connections_errors",
           "connections_lost", "returns_bad")  # fmt: skip


class PoolProbe(BaseProbe):
    """The application's psycopg_pool: requests waiting, their average wait, errors.

    Counters are compared with the previous check (``get_stats``, never ``pop_stats``,
    which would reset them for everyone else). With `metrics` the pool is also published
    as ``db.client.connection.*`` metrics.
    """

    component_type = "component"

    def __init__(
        self,
        pool: PoolLike,
        *,
        name: str | None = None,
        critical: bool = False,
        timeout: float = 1.0,
        waiting: Thresholds = _WAITING,
        average_wait_ms: Thresholds = _AVERAGE_WAIT_MS,
        metrics: bool = True,
    ) -> None:
        super().__init__(name or f"pool/{pool.name}", critical=critical, timeout=timeout)
        self.pool = pool
        self.waiting = waiting
        self.average_wait_ms = average_wait_ms
        self._previous: dict[str, int] = {}
        self._lock = threading.Lock()
        if metrics:
            instrument_pool(pool)

    def check(self) -> ProbeResult:
        """Read the pool's statistics and judge them against the previous check's."""
        stats = dict(self.pool.get_stats())
        with self._lock:
            previous, self._previous = self._previous, stats
        delta = {key: stats.get(key, 0) - previous.get(key, 0) for key in _DELTAS}
        waiting = stats.get("requests_waiting", 0)
        queued = delta["requests_queued"]
        average = delta["requests_wait_ms"] / queued if queued > 0 else 0.0
        errors = delta["requests_errors"]
        verdicts = [self.waiting.judge(waiting), self.average_wait_ms.judge(average)]
        verdicts.append(Status.WARN if errors > 0 else Status.PASS)
        status = Status.worst(verdicts)
        problems = []
        if waiting:
            problems.append(f"{waiting} requests waiting for a connection")
        if average:
            problems.append(f"queued requests waited {average:.0f} ms on average")
        if errors:
            problems.append(f"{errors} requests failed to get a connection since the last check")
        details: dict[str, Detail] = {
            key: stats.get(key) for key in ("pool_size", "pool_available", "pool_min", "pool_max")
        }
        details.update(average_wait_ms=round(average, 1), requests_errors=errors,
                       connections_errors=delta["connections_errors"],
                       connections_lost=delta["connections_lost"])  # fmt: skip
        return ProbeResult(
            status, "; ".join(problems) if status is not Status.PASS else "",
            observed_value=waiting, observed_unit="{request}", measurement="waiting",
            details=details,
        )  # fmt: skip


_POOL_ATTR = "db.client.connection.pool.name"
_STATE_ATTR = "db.client.connection.state"


def _gauge(read: str) -> Any:
    def observe(pool: PoolLike) -> Iterable[tuple[float, dict[str, str]]]:
        stats = pool.get_stats()
        yield float(stats.get(read, 0)), {_POOL_ATTR: pool.name}

    return observe


def _connection_count(pool: PoolLike) -> Iterable[tuple[float, dict[str, str]]]:
    stats = pool.get_stats()
    size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
    yield float(idle), {_POOL_ATTR: pool.name, _STATE_ATTR: "idle"}
    yield float(max(0, size - idle)), {_POOL_ATTR: pool.name, _STATE_ATTR: "used"}


def instrument_pool(pool: PoolLike) -> None:
    """Publish a psycopg_pool as OpenTelemetry ``db.client.connection.*`` metrics.

    ``count`` (by ``db.client.connection.state``: idle, used), ``max``, ``idle.min``,
    ``pending_requests`` and ``timeouts``, each with ``db.client.connection.pool.name``.
    They are read from ``get_stats`` when metrics are collected.
    """
    gauges = (
        ("db.client.connection.max", "The maximum number of open connections allowed",
         "pool_max"),
        ("db.client.connection.idle.min", "The minimum number of idle open connections "
         "allowed", "pool_min"),
        ("db.client.connection.pending_requests", "The number of current pending requests "
         "for an open connection", "requests_waiting"),
    )  # fmt: skip
    register_observable(
        "db.client.connection.count", pool, "The number of connections that are currently "
        "in state described by the state attribute", "{connection}", _connection_count,
        counter=False,
    )  # fmt: skip
    for instrument, description, key in gauges:
        unit = "{request}" if key == "requests_waiting" else "{connection}"
        register_observable(instrument, pool, description, unit, _gauge(key), counter=False)
    register_observable(
        "db.client.connection.timeouts", pool, "The number of connection timeouts that have "
        "occurred trying to obtain a connection from the pool", "{timeout}",
        _gauge("requests_errors"),
    )  # fmt: skip
