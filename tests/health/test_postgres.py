"""Postgres against a real private cluster: the fresh-connection probe, classification,
statement timeouts, the admin connection and its backoff, sessions and kill."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest

from sendguard import ConfigError
from sendguard.health import (
    AdminConnection,
    AdminUnavailable,
    PostgresProbe,
    Refusal,
    SaturationProbe,
    SessionFilter,
    Status,
    classify_connect_error,
    kill_sessions,
    list_sessions,
    run_probe,
)
from sendguard.health._sessions import Session
from sendguard.testing import FakeClock
from sendguard.testing.servers import PostgresServer, free_port
from tests.health._pg import close_all, dsn_for, fill_slots, private_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    yield from private_postgres(max_connections=12, reserved=3)


@pytest.fixture
def admin(pg) -> Iterator[AdminConnection]:
    with AdminConnection(pg.dsn) as connection:
        connection.connect()
        yield connection


@pytest.mark.parametrize(
    ("message", "refusal"),
    [
        ('connection failed: connection to server at "127.0.0.1", port 5 failed: FATAL:  sorry, '
         "too many clients already", Refusal.SLOTS_EXHAUSTED),
        ("FATAL:  remaining connection slots are reserved for non-replication superuser "
         "connections", Refusal.SLOTS_EXHAUSTED),
        ('FATAL:  remaining connection slots are reserved for roles with privileges of the '
         '"pg_use_reserved_connections" role', Refusal.SLOTS_EXHAUSTED),
        ('FATAL:  too many connections for role "app"', Refusal.ROLE_LIMIT),
        ('FATAL:  too many connections for database "mail"', Refusal.DATABASE_LIMIT),
        ("FATAL:  the database system is shutting down", Refusal.NOT_ACCEPTING),
        ('FATAL:  password authentication failed for user "app"', Refusal.AUTHENTICATION),
        ("connection to server at 127.0.0.1 failed: Connection refused", Refusal.UNREACHABLE),
        ("connection failed: timeout expired", Refusal.TIMEOUT),
        ("something new", Refusal.OTHER),
    ],
)  # fmt: skip
def test_refusals_are_classified_from_the_message(message, refusal) -> None:
    assert classify_connect_error(psycopg.OperationalError(message)) is refusal


def test_fresh_connection_probe_passes_with_the_app_role(pg) -> None:
    result = run_probe(PostgresProbe(dsn_for(pg, "app")))
    assert result.status is Status.PASS
    assert result.observed_unit == "ms"
    assert isinstance(result.observed_value, float) and result.observed_value > 0


def test_a_superuser_probe_warns_that_it_cannot_see_exhaustion(pg) -> None:
    result = run_probe(PostgresProbe(pg.dsn))
    assert result.status is Status.WARN
    assert "superuser" in result.message


def test_statement_timeout_bounds_the_query(pg) -> None:
    probe = PostgresProbe(dsn_for(pg, "app"), query="SELECT pg_sleep(5)", timeout=0.3)
    started = time.monotonic()
    result = run_probe(probe)
    assert time.monotonic() - started < 2.0
    assert result.status is Status.FAIL
    assert "statement timeout" in result.message
    assert result.details["sqlstate"] == "57014"


def test_role_connection_limit_is_named(pg) -> None:
    held = psycopg.connect(dsn_for(pg, "capped"))
    try:
        result = run_probe(PostgresProbe(dsn_for(pg, "capped")))
    finally:
        held.close()
    assert result.status is Status.FAIL
    assert result.details["refusal"] == "role_limit"
    assert result.message.startswith("the role's CONNECTION LIMIT is reached: FATAL: too many")


def test_an_unreachable_server_fails_fast() -> None:
    probe = PostgresProbe(f"postgresql://app@127.0.0.1:{free_port()}/postgres", timeout=1.0)
    started = time.monotonic()
    result = run_probe(probe)
    assert time.monotonic() - started < 1.0
    assert result.details["refusal"] == "unreachable"


def test_probe_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"PostgresProbe\.dsn"):
        PostgresProbe("")
    with pytest.raises(ConfigError, match=r"PostgresProbe\.statement_timeout"):
        PostgresProbe("postgresql://x", statement_timeout=0)


def test_admin_connection_knows_its_reserved_access(admin, pg) -> None:
    assert admin.reserved_access == "superuser"
    assert admin.backend_pid is not None
    with AdminConnection(dsn_for(pg, "ops")) as ops:
        ops.connect()
        assert ops.superuser is False
        assert ops.reads_all_stats and ops.signals_backends
        if pg.version < 16:
            assert ops.reserved_access is None  # before 16 only superusers get in


def test_saturation_counts_slots_idle_transactions_and_long_queries(pg, admin) -> None:
    app = dsn_for(pg, "app")
    idle_tx = psycopg.connect(app)
    runner = psycopg.connect(app, autocommit=True)
    try:
        idle_tx.execute("SELECT 1")  # opens a transaction and leaves it idle
        runner.execute("SELECT pg_sleep(0.3)")
        reading = SaturationProbe(admin).read()
    finally:
        close_all([idle_tx, runner])
    assert reading.ordinary_slots == 12 - 3
    assert reading.client_backends >= 3  # the two above and the admin itself
    assert reading.idle_in_transaction == 1
    assert reading.oldest_idle_in_transaction >= 0.3


def test_non_superuser_admin_warns_and_is_refused_superuser_sessions(pg, admin) -> None:
    with AdminConnection(dsn_for(pg, "ops")) as ops:
        result = run_probe(SaturationProbe(ops))
        assert result.status is Status.WARN
        assert "may not use reserved slots" in result.message
        report = kill_sessions(ops, SessionFilter(roles=["sendguard"]))
        assert report.dry_run
        assert report.refused
        assert all("superuser" in o.detail for o in report.refused)


def test_admin_reconnects_after_a_backoff(pg) -> None:
    clock = FakeClock()
    with AdminConnection(pg.dsn, clock=clock, backoff_base=1.0, backoff_cap=1.0) as admin:
        admin.connect()
        first = admin.backend_pid
        with psycopg.connect(pg.dsn, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [first])
        with pytest.raises(AdminUnavailable, match="broke"):
            admin.execute("SELECT 1")
        with pytest.raises(AdminUnavailable, match="backing off"):
            admin.execute("SELECT 1")
        clock.advance(1.01)
        assert admin.execute("SELECT 1") == [(1,)]
        assert admin.backend_pid not in (None, first)


def test_kill_is_a_dry_run_by_default_and_never_signals_itself(pg, admin) -> None:
    held = [psycopg.connect(dsn_for(pg, "app")) for _ in range(2)]
    try:
        report = kill_sessions(admin, SessionFilter(), execute=False)
        pids = {o.session.pid for o in report.outcomes}
        assert admin.backend_pid not in pids
        assert {c.info.backend_pid for c in held} <= pids
        assert all(o.action == "would terminate" for o in report.outcomes)  # all idle
        for conn in held:
            conn.execute("SELECT 1")  # still alive
    finally:
        close_all(held)


def test_cancel_then_terminate_only_what_still_matches(pg, admin) -> None:
    app = dsn_for(pg, "app")
    busy = psycopg.connect(app, autocommit=True, application_name="worker-1")
    idle_tx = psycopg.connect(app, application_name="worker-2")
    bystander = psycopg.connect(app, application_name="web-1")
    try:
        idle_tx.execute("SELECT 1")
        busy_pid = busy.info.backend_pid
        thread = threading.Thread(target=lambda: _sleep_query(busy), daemon=True)
        thread.start()
        _wait_active(admin, busy_pid)
        report = kill_sessions(admin, SessionFilter(states=["active"], applications=["worker-*"]),
                               execute=True, grace=2.0)  # fmt: skip
        thread.join(5)
        assert [(o.session.pid, o.action) for o in report.outcomes] == [(busy_pid, "cancelled")]
        assert "idle" in report.outcomes[0].detail
        report = kill_sessions(admin, SessionFilter(applications=["worker-*"]), execute=True,
                               grace=0.2)  # fmt: skip
        actions = {o.session.application: o.action for o in report.outcomes}
        assert actions == {"worker-1": "terminated", "worker-2": "terminated"}
        remaining = {s.application for s in list_sessions(admin)}
        assert "web-1" in remaining and not remaining & {"worker-1", "worker-2"}
    finally:
        close_all([busy, idle_tx, bystander])


def _sleep_query(conn: psycopg.Connection) -> None:
    with contextlib.suppress(psycopg.errors.QueryCanceled):
        conn.execute("SELECT pg_sleep(30)")


def _wait_active(admin: AdminConnection, pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(s.pid == pid and s.state == "active" for s in list_sessions(admin)):
            return
        time.sleep(0.01)
    raise AssertionError(f"session {pid} never became active")


def session(**changes: object) -> Session:
    values: dict[str, object] = dict(
        pid=1, backend_start=0.0, role="app", application="worker-1", client="local",
        database="mail", state="active", transaction_age=5.0, query_age=5.0, state_age=5.0,
        wait="", query="SELECT 1",
    )  # fmt: skip
    values.update(changes)
    return Session(**values)  # type: ignore[arg-type]


def test_session_filter_requires_every_criterion() -> None:
    flt = SessionFilter(older_than=60, states=["idle in transaction"], roles=["app"],
                        applications=["worker-*"])  # fmt: skip
    good = session(state="idle in transaction", state_age=61.0)
    assert flt.matches(good)
    assert not flt.matches(session(state="idle in transaction", state_age=59.0))
    assert not flt.matches(session(state="active", state_age=61.0))
    assert not flt.matches(session(state="idle in transaction", state_age=61.0, role="etl"))
    assert not flt.matches(session(state="idle in transaction", state_age=61.0,
                                   application="web-1"))  # fmt: skip
    assert SessionFilter().is_empty and not flt.is_empty


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"states": ["sleeping"]}, "unknown states"), ({"older_than": -1}, "older_than"),
     ({"roles": "app"}, "SessionFilter.roles"), ({"pids": ["12"]}, "SessionFilter.pids")],
)  # fmt: skip
def test_session_filter_validation_names_the_field(changes, field) -> None:
    with pytest.raises(ConfigError, match=field):
        SessionFilter(**changes)


def test_fill_helper_really_fills(pg) -> None:
    held = fill_slots(dsn_for(pg, "app"))
    try:
        assert len(held) >= 12 - 3 - 2  # other tests' admin sessions may hold a few
        result = run_probe(PostgresProbe(dsn_for(pg, "app")))
        assert result.details["refusal"] == "slots_exhausted"
    finally:
        close_all(held)
