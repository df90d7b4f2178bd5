"""A real three-node Redis Cluster for the tests in this directory (one per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from sendguard.testing.servers import RedisClusterServer


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    """Three `redis-server` primaries on free loopback ports, joined into one cluster."""
    with RedisClusterServer() as cluster:
        yield cluster


@pytest.fixture
def cluster_nodes(redis_cluster: RedisClusterServer) -> Iterator[list[redis.Redis]]:
    """A plain client per node, after FLUSHALL and CONFIG RESETSTAT on every node."""
    clients = [redis.Redis(host="127.0.0.1", port=port) for port in redis_cluster.ports]
    for client in clients:
        client.flushall()
        client.config_resetstat()
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServer, cluster_nodes: list[redis.Redis]) -> str:
    """The cluster's ``redis+cluster://`` URL, every node flushed so each test starts clean."""
    return redis_cluster.url
