"""Helpers for the Postgres tests: a private cluster with an application role and an ops role."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest

from sendguard.testing.servers import PostgresServer, ServerBinaryMissing

ROLES_SQL = [
    "CREATE ROLE app LOGIN",
    "CREATE ROLE ops LOGIN",
    "GRANT pg_monitor, pg_signal_backend TO ops",
    "CREATE ROLE capped LOGIN CONNECTION LIMIT 1",
]


def private_postgres(max_connections: int = 12, reserved: int = 3) -> Iterator[PostgresServer]:
    """A cluster of our own (these tests fill every slot), with the roles above."""
    try:
        server = PostgresServer(max_connections=max_connections,
                                superuser_reserved_connections=reserved)  # fmt: skip
    except ServerBinaryMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    with server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            for sql in ROLES_SQL:
                conn.execute(sql.encode())
        yield server


def dsn_for(server: PostgresServer, role: str) -> str:
    """The server's DSN with another role."""
    return server.dsn.replace(f"{server.superuser}@", f"{role}@")


def fill_slots(dsn: str, limit: int = 200) -> list[psycopg.Connection]:
    """Open connections with `dsn` until Postgres refuses one; return them."""
    held: list[psycopg.Connection] = []
    try:
        while len(held) < limit:
            held.append(psycopg.connect(dsn, connect_timeout=2))
    except psycopg.OperationalError:
        return held
    close_all(held)
    raise AssertionError(f"Postgres accepted {limit} connections: nothing was filled")


def close_all(connections: list[psycopg.Connection]) -> None:
    for conn in connections:
        with contextlib.suppress(psycopg.Error):
            conn.close()
