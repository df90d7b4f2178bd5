"""Drill ``connection-exhaustion``: Postgres runs out of connections (INCIDENTS.md #3).

A real Postgres (a throwaway cluster from the local binaries, or the server named by
``SENDGUARD_DRILL_POSTGRES_DSN``, a superuser DSN of a server you can afford to fill) has
a web worker that already holds a connection, as the incident's workers did. Then a
leaky job (``application_name`` ``leaky-job``) takes every ordinary slot.

Unguarded, the health check is the incident's: a query over the worker's own connection.
It keeps answering 200, nobody is alerted, an operator with the application's role is
refused like everyone else, and the way out is a restart that ends every session.

Guarded, sendguard's readiness takes a fresh connection with the application's role
every `INTERVAL` seconds and answers 503 naming the cause; the reserved admin
connection, opened before the slots ran out, still works, and ``db kill`` (here
`kill_sessions`) ends only the leaky job's sessions.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sendguard.drills._base import Drill, DrillUnavailable, Goal, Metric, Value
from sendguard.health import (
    AdminConnection,
    HealthRegistry,
    PostgresProbe,
    SaturationProbe,
    SessionFilter,
    Status,
    kill_sessions,
)

__all__ = ["DRILL", "DSN_ENV", "INTERVAL", "PostgresUnavailable", "replay"]

DSN_ENV = "SENDGUARD_DRILL_POSTGRES_DSN"
INTERVAL = 0.5
"""Seconds between two readiness checks in the guarded run."""
APP_ROLE = "sendguard_drill_app"
LEAK = "leaky-job"
RESERVED = 3


class PostgresUnavailable(DrillUnavailable):
    """No Postgres to drill on: no server binaries and no DSN. The message says what to do."""


def max_connections(scale: float) -> int:
    """The throwaway cluster's max_connections at `scale` (more slots to fill at 1.0)."""
    return 10 + round(30 * scale)


@dataclass(frozen=True, slots=True)
class _Target:
    superuser_dsn: str
    app_dsn: str
    restart: Callable[[], None] | None


def _with_role(dsn: str, role: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params.pop("password", None)
    params["user"] = role
    return make_conninfo("", **params)


@contextlib.contextmanager
def _target(scale: float) -> Iterator[_Target]:
    import psycopg

    from sendguard.testing.servers import PostgresServer, ServerBinaryMissing

    dsn = os.environ.get(DSN_ENV)
    if dsn:
        server = None
    else:
        try:
            server = PostgresServer(max_connections=max_connections(scale),
                                    superuser_reserved_connections=RESERVED)  # fmt: skip
        except ServerBinaryMissing as missing:
            raise PostgresUnavailable(
                f"the connection-exhaustion drill needs a Postgres to fill: {missing}; or set "
                f"{DSN_ENV} to a superuser DSN of a server you can afford to fill"
            ) from None
        server.start()
        dsn = server.dsn
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN".encode())
        yield _Target(dsn, _with_role(dsn, APP_ROLE), server.restart if server else None)
    finally:
        if server is not None:
            server.stop()


def _connect(dsn: str, name: str) -> Any:
    import psycopg

    return psycopg.connect(dsn, autocommit=True, application_name=name, connect_timeout=2)


def _fill(dsn: str) -> list[Any]:
    import psycopg

    held: list[Any] = []
    with contextlib.suppress(psycopg.OperationalError):
        while len(held) < 1000:
            held.append(_connect(dsn, LEAK))
    return held


def _poll(condition: Callable[[], bool], timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def _can_connect(dsn: str) -> bool:
    import psycopg

    try:
        _connect(dsn, "operator").close()
    except psycopg.OperationalError:
        return False
    return True


def _static_check(worker: Any) -> int:
    """The incident's health check: a query over a connection the worker already holds."""
    try:
        worker.execute("SELECT 1")
    except Exception:
        return 503
    return 200


def _close(connections: list[Any]) -> None:
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.close()


def replay(*, guarded: bool, scale: float) -> Mapping[str, Value]:
    """Fill the slots once, and measure what the health check and the operators saw."""
    with _target(scale) as target:
        worker = _connect(target.app_dsn, "web-worker")
        admin = AdminConnection(target.superuser_dsn) if guarded else None
        registry = None
        held: list[Any] = []
        try:
            if admin is not None:
                admin.connect()  # opened while there is room, and kept
                registry = HealthRegistry(
                    [PostgresProbe(target.app_dsn, timeout=1.0),
                     SaturationProbe(admin, role=APP_ROLE)],
                    interval=INTERVAL, hooks=[],
                )  # fmt: skip
                registry.start()
                _poll(lambda: registry.readiness().status is not Status.FAIL, 10)
            held = _fill(target.app_dsn)
            static = _static_check(worker)
            if registry is None:
                return _unguarded(target, static, held)
            return _guarded(target, registry, admin, static, held)  # type: ignore[arg-type]
        finally:
            if registry is not None:
                registry.close()
            if admin is not None:
                admin.close()
            _close([*held, worker])


def _unguarded(target: _Target, static: int, held: list[Any]) -> dict[str, Value]:
    operator_in = _can_connect(target.app_dsn)  # no reserved path: refused like everyone
    recover = None
    if target.restart is not None:
        started = time.monotonic()
        target.restart()
        waited = _poll(lambda: _can_connect(target.app_dsn), 30)
        recover = None if waited is None else time.monotonic() - started
    return {
        "static_status": static, "reported_status": static, "cause_named": 0,
        "detect_s": None, "admin_ok": int(operator_in), "recover_s": recover,
        "sessions_ended": len(held) + 1 if target.restart else None,
    }  # fmt: skip


def _guarded(
    target: _Target, registry: HealthRegistry, admin: AdminConnection, static: int,
    held: list[Any],
) -> dict[str, Value]:  # fmt: skip
    detect = _poll(lambda: registry.readiness().status is Status.FAIL, 10)
    report = registry.readiness()
    named = "connection slots exhausted" in report.summary()
    admin_ok = admin.execute("SELECT 1") == [(1,)]
    started = time.monotonic()
    killed = kill_sessions(admin, SessionFilter(applications=[LEAK]), execute=True, grace=0.5)
    back = _poll(lambda: _can_connect(target.app_dsn), 10)
    recover = None if back is None else time.monotonic() - started
    _poll(lambda: registry.readiness().status is not Status.FAIL, 10)  # and readiness follows
    return {
        "static_status": static, "reported_status": report.http_status,
        "cause_named": int(named), "detect_s": detect, "admin_ok": int(admin_ok),
        "recover_s": recover,
        "sessions_ended": killed.count("terminated") + killed.count("cancelled"),
    }  # fmt: skip


METRICS = (
    Metric("static_status", "static health check answered", "HTTP"),
    Metric("reported_status", "readiness the monitor saw", "HTTP"),
    Metric("cause_named", "the report names the cause", "yes=1"),
    Metric("detect_s", "time to detect", "s", 2),
    Metric("admin_ok", "an operator got in during it", "yes=1"),
    Metric("recover_s", "time until the app connects (db kill / restart)", "s", 2),
    Metric("sessions_ended", "sessions ended to recover", "sessions"),
)
BY_KEY = {metric.key: metric for metric in METRICS}


def _leaked(scale: float) -> float:
    """Sessions the leak takes in the unguarded run (the ordinary slots but the worker's)."""
    return max_connections(scale) - RESERVED - 1


DRILL = Drill(
    name="connection-exhaustion",
    incident="Postgres runs out of connections; the static health check stays green (#3)",
    metrics=METRICS,
    goals=(
        Goal.at_least(BY_KEY["reported_status"], 503),
        Goal.at_least(BY_KEY["cause_named"], 1),
        Goal.at_most(BY_KEY["detect_s"], 2 * INTERVAL),
        Goal.at_least(BY_KEY["admin_ok"], 1),
        Goal.at_most(BY_KEY["recover_s"], 5.0),
        Goal.at_most(BY_KEY["sessions_ended"], _leaked, "sessions ended <= the leak's"),
    ),
    replay=replay,
    headline="detect_s",
    min_scale=0.1,
)
