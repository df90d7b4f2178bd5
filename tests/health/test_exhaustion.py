"""Incident #3 end to end on a real Postgres: every ordinary slot taken.

A static health check (a worker that already holds a connection) keeps saying 200;
sendguard's readiness says 503 within one refresh interval and names the cause; the
reserved admin connection still works, ``sendguard db kill`` frees the slots over a
reserved slot, and readiness recovers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from sendguard.cli._db import register as register_db
from sendguard.health import (
    AdminConnection,
    HealthRegistry,
    PostgresProbe,
    SaturationProbe,
    Status,
    asgi_app,
)
from sendguard.testing.servers import PostgresServer
from tests.health._pg import close_all, dsn_for, fill_slots, private_postgres
from tests.health.test_endpoints import call_asgi

pytestmark = pytest.mark.postgres

INTERVAL = 0.5


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    yield from private_postgres(max_connections=14, reserved=3)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sendguard")
    register_db(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.run(args)
    return status


def poll(condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.01)
    return time.monotonic() - started


def static_app(worker_conn: psycopg.Connection) -> Any:
    """The incident's health check: a query over a connection the worker already holds."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        worker_conn.execute("SELECT 1")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_exhaustion_is_seen_named_and_recovered_from(pg, capsys) -> None:
    app_dsn = dsn_for(pg, "app")
    worker = psycopg.connect(app_dsn, autocommit=True)
    admin = AdminConnection(pg.dsn)
    admin.connect()  # opened while there is room, and kept
    registry = HealthRegistry(
        [PostgresProbe(app_dsn, timeout=1.0), SaturationProbe(admin, role="app")],
        interval=INTERVAL, hooks=[],
    )  # fmt: skip
    app = asgi_app(registry, static_app(worker))
    held: list[psycopg.Connection] = []
    try:
        registry.start()
        poll(lambda: registry.readiness().status is Status.PASS, 5)
        assert call_asgi(app, "/healthz")[0] == 200

        held = fill_slots(app_dsn)
        detected = poll(lambda: call_asgi(app, "/readyz")[0] == 503, 5)
        assert detected <= INTERVAL + 0.5  # one refresh interval, plus the probe itself

        assert call_asgi(app, "/healthz")[0] == 200  # the static check stays green
        status, _, body = call_asgi(app, "/readyz")
        document = json.loads(body)
        assert status == 503
        assert document["status"] == "fail"
        assert "postgres: connection slots exhausted" in document["output"]
        connection = document["checks"]["postgres:connection"][0]
        assert connection["details"]["refusal"] == "slots_exhausted"
        saturation = document["checks"]["postgres-saturation:utilization"][0]
        assert saturation["status"] == "fail" and saturation["observedValue"] >= 95

        assert admin.execute("SELECT 1") == [(1,)]  # the kept connection still works
        assert run_cli(["db", "kill", "--dsn", pg.dsn, "--role", "app", "--execute",
                        "--grace", "0.2s"]) == 0  # fmt: skip
        out = capsys.readouterr().out
        assert f"{len(held) + 1} terminated" in out  # the filler and the worker

        recovered = poll(lambda: call_asgi(app, "/readyz")[0] == 200, 5)
        assert recovered <= INTERVAL + 1.0
        assert registry.readiness().check("postgres").status is Status.PASS
    finally:
        registry.close()
        close_all([*held, worker])
        admin.close()


def test_db_kill_gets_in_over_a_reserved_slot_when_all_are_taken(pg, capsys) -> None:
    held = fill_slots(dsn_for(pg, "app"))
    try:
        with pytest.raises(psycopg.OperationalError, match="reserved"):
            psycopg.connect(dsn_for(pg, "ops")).close()  # not a superuser: locked out on PG 15
        assert run_cli(["db", "top", "--dsn", pg.dsn]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"connections: {len(held) + 1} of 11 ordinary slots")
        assert run_cli(["db", "kill", "--dsn", pg.dsn, "--role", "app"]) == 0
        assert "nothing was signalled" in capsys.readouterr().out
        assert run_cli(["db", "kill", "--dsn", pg.dsn, "--role", "app", "--execute"]) == 0
        assert f"{len(held)} terminated" in capsys.readouterr().out
        psycopg.connect(dsn_for(pg, "app")).close()  # room again
    finally:
        close_all(held)
