"""Shared fixtures: the real-server test bed (a private redis-server and Postgres cluster).

A missing server binary fails the test with the install command; it never skips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import redis

from sendguard.testing.servers import PostgresServer, RedisServer, ServerBinaryMissing

S = TypeVar("S", RedisServer, PostgresServer)


def _serve(factory: Callable[[], S]) -> Iterator[S]:
    """Start a server for the fixture's lifetime; a missing binary fails loudly."""
    try:
        server = factory()
    except ServerBinaryMissing as err:
        message = str(err)  # fail outside `except`, so the report shows it once
    else:
        with server:
            yield server
        return
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server shared by the whole session."""
    yield from _serve(RedisServer)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, flushed (FLUSHALL) so each test starts clean."""
    if not redis_server.is_running:  # a test may have stopped the shared server
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A `redis.Redis` client on the clean shared server, closed after the test."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    """A private redis-server the test may stop, start and restart at will."""
    yield from _serve(RedisServer)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway Postgres cluster shared by the whole session."""
    yield from _serve(PostgresServer)


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The shared cluster's DSN (superuser `sendguard`, database `postgres`)."""
    if not postgres_server.is_running:
        postgres_server.start()
    return postgres_server.dsn
