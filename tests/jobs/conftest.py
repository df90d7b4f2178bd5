"""Ledger stores for the behaviour suite: memory, real Redis and real Postgres, on a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sendguard.jobs import LedgerStore, MemoryLedgerStore
from sendguard.testing import FakeClock

STORES = ["memory", "redis", "postgres"]


@pytest.fixture(scope="session")
def ledger_table(postgres_server) -> str:
    """The ledger table, made once by the explicit migration."""
    from sendguard.jobs.postgres_store import migrate

    migrate(postgres_server.dsn, table="sendguard_ledger_test")
    return "sendguard_ledger_test"


def make_store(kind: str, request: pytest.FixtureRequest, clock: FakeClock) -> LedgerStore:
    """A store of `kind` whose time is `clock` (Redis and Postgres get it as milliseconds)."""
    if kind == "memory":
        return MemoryLedgerStore(clock)

    def now_ms() -> int:
        return round(clock.wall() * 1000)

    if kind == "redis":
        from sendguard.jobs.redis_store import RedisLedgerStore

        return RedisLedgerStore(request.getfixturevalue("redis_url"), time_ms=now_ms)
    from sendguard.jobs.postgres_store import PostgresLedgerStore

    table = request.getfixturevalue("ledger_table")
    return PostgresLedgerStore(request.getfixturevalue("postgres_dsn"), table=table, time_ms=now_ms)


@pytest.fixture(params=STORES)
def ledger_env(request) -> Iterator[tuple[LedgerStore, FakeClock, str]]:
    """(store, clock, a ledger name no other test uses)."""
    clock = FakeClock()
    store = make_store(request.param, request, clock)
    yield store, clock, f"t{uuid.uuid4().hex[:12]}"
    store.close()
