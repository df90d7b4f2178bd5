"""Access to the shared store (Redis), kept out of the way of the calls it serves.

`StoreGate` puts the store itself behind a small breaker: after a failure the guard runs
on local state and does not touch the store again until a jittered backoff has passed,
so an outage of Redis slows a request by at most one socket timeout, and then not again
for a while. Only one caller probes the store when the backoff ends.

`connect_redis` makes redis-py clients with short socket timeouts and no client-side
retries (a retry would double the time a request can lose to a dead store). A URL with
scheme ``redis+cluster://`` or ``rediss+cluster://`` (see `REDIS_CLUSTER_SCHEMES`) gives a
Redis Cluster client instead; every other URL gives a single-node client.
"""

from __future__ import annotations

import random
import threading
from typing import TYPE_CHECKING, Any, TypeAlias

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.config import make_rng
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard._core.telemetry import StoreRecovered, StoreUnavailableEvent, Telemetry

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

    RedisClient: TypeAlias = redis.Redis | redis.cluster.RedisCluster
    """What `connect_redis` returns: a single-node or a Redis Cluster client."""
    AsyncRedisClient: TypeAlias = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
    """What `connect_redis_async` returns."""

__all__ = [
    "DEFAULT_STORE_TIMEOUT",
    "REDIS_CLUSTER_SCHEMES",
    "REDIS_SCHEMES",
    "AsyncClients",
    "StoreGate",
    "cluster_node_url",
    "connect_redis",
    "connect_redis_async",
]

REDIS_CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
"""URL prefixes that ask for a Redis Cluster client (the URL names any one node)."""
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", *REDIS_CLUSTER_SCHEMES)
"""URL prefixes that name a Redis store (single node or cluster)."""


def cluster_node_url(url: str) -> str | None:
    """For a cluster URL, the plain ``redis://``/``rediss://`` URL of its node; else None."""
    for scheme in REDIS_CLUSTER_SCHEMES:
        if url.startswith(scheme):
            return url.replace("+cluster", "", 1)
    return None


DEFAULT_STORE_TIMEOUT = 0.1
"""Seconds a store command may take before the guard gives up on it and runs locally."""


class StoreGate:
    """Tracks whether the store may be used now; backs off after failures.

    `available()` is a single attribute read while the store is healthy. After `failed()`,
    it answers False until the backoff (base doubling to cap, with full jitter on the upper
    half) ends; then exactly one caller gets True to probe, and the others keep skipping
    until that probe reports `succeeded()` or `failed()`.
    """

    __slots__ = (
        "_backoff",
        "_clock",
        "_down_since",
        "_down_until",
        "_lock",
        "_rng",
        "base",
        "cap",
        "guard",
        "store",
        "telemetry",
    )

    def __init__(
        self,
        store: str,
        guard: str,
        telemetry: Telemetry,
        *,
        clock: Clock = SYSTEM_CLOCK,
        base: float = 0.5,
        cap: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < base <= cap:
            raise ConfigError(f"store backoff needs 0 < base <= cap, got base={base!r} cap={cap!r}")
        self.store = store
        self.guard = guard
        self.telemetry = telemetry
        self.base = base
        self.cap = cap
        self._clock = clock
        self._rng = make_rng(rng)
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self._down_since = 0.0
        self._backoff = 0.0

    @property
    def is_down(self) -> bool:
        """True while the store is considered unavailable."""
        return self._down_until is not None

    def available(self) -> bool:
        """May the caller use the store now? (Claims the single probe when a backoff ends.)"""
        if self._down_until is None:
            return True
        now = self._clock.monotonic()
        with self._lock:
            down_until = self._down_until_now()
            if down_until is None:
                return True
            if now < down_until:
                return False
            # Claim the probe: everyone else keeps skipping until it reports.
            self._down_until = now + max(self._backoff, self.base)
            return True

    def _down_until_now(self) -> float | None:
        return self._down_until

    def failed(self, error: BaseException) -> None:
        """Record a store failure: back off and emit `StoreUnavailableEvent`."""
        now = self._clock.monotonic()
        with self._lock:
            if self._down_until is None:
                self._down_since = now
                self._backoff = self.base
            else:
                self._backoff = min(self.cap, self._backoff * 2)
            wait = self._backoff * (0.5 + 0.5 * self._rng.random())
            self._down_until = now + wait
        self.telemetry.emit(
            StoreUnavailableEvent(
                store=self.store,
                guard=self.guard,
                error_type=type(error.__cause__ or error).__name__,
                error=_describe(error),
                retry_in=wait,
            )
        )

    def succeeded(self) -> None:
        """Record a store success; emits `StoreRecovered` if the store had been down."""
        if self._down_until is None:
            return
        with self._lock:
            if self._down_until_now() is None:
                return
            down_for = self._clock.monotonic() - self._down_since
            self._down_until = None
            self._backoff = 0.0
        self.telemetry.emit(StoreRecovered(store=self.store, guard=self.guard, down_for=down_for))


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _check_timeout(timeout: float) -> None:
    if not 0 < timeout <= 10:
        raise ConfigError(f"store timeout must be in (0, 10] seconds, got {timeout!r}")


def _client_options(timeout: float, retry: object, options: dict[str, Any]) -> dict[str, Any]:
    """What every client `connect_redis` and `connect_redis_async` make shares: short
    socket timeouts, no client-side retries (`retry` does none), no health checks."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
        "health_check_interval": 0,
        **options,
    }


def connect_redis(
    url: str, *, timeout: float = DEFAULT_STORE_TIMEOUT, **options: Any
) -> RedisClient:
    """A redis-py client for `url` with short socket timeouts and no client-side retries.

    ``redis+cluster://host:port`` (or ``rediss+cluster://``) gives a
    `redis.cluster.RedisCluster` that discovers the cluster from that node; it follows
    MOVED/ASK redirections but, like the single-node client, does not retry failures.
    """
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    _check_timeout(timeout)
    node_url = cluster_node_url(url)
    if node_url is not None:
        import redis.cluster

        cluster: redis.cluster.RedisCluster = redis.cluster.RedisCluster.from_url(
            node_url,
            **_client_options(timeout, Retry(NoBackoff(), 0), options),
        )
        return cluster
    client: redis.Redis = redis.Redis.from_url(
        url,
        **_client_options(timeout, Retry(NoBackoff(), 0), options),
    )
    return client


class AsyncClients:
    """One asyncio Redis client per running event loop (a client is bound to its loop).

    Apps that run several loops (tests, `asyncio.run` per job, threads with loops) get a
    client for each; clients of loops that have been garbage collected go with them.
    """

    def __init__(self, url: str | None, timeout: float, given: AsyncRedisClient | None) -> None:
        import weakref

        self._url = url
        self._timeout = timeout
        self._given = given
        self._clients: weakref.WeakKeyDictionary[object, AsyncRedisClient] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> AsyncRedisClient:
        """The client of the running loop (made on first use)."""
        if self._given is not None:
            return self._given
        import asyncio

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            if self._url is None:
                raise StoreUnavailable("no asyncio Redis client and no URL to make one")
            client = self._clients[loop] = connect_redis_async(self._url, timeout=self._timeout)
        return client

    async def aclose(self) -> None:
        """Close the running loop's client (and the given one)."""
        import asyncio

        if self._given is not None:
            await self._given.aclose()
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()


def connect_redis_async(
    url: str, *, timeout: float = DEFAULT_STORE_TIMEOUT, **options: Any
) -> AsyncRedisClient:
    """An asyncio redis-py client for `url`, configured like `connect_redis` (cluster too)."""
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    _check_timeout(timeout)
    node_url = cluster_node_url(url)
    if node_url is not None:
        import redis.asyncio.cluster

        cluster: redis.asyncio.cluster.RedisCluster = redis.asyncio.cluster.RedisCluster.from_url(
            node_url,
            **_client_options(timeout, Retry(NoBackoff(), 0), options),
        )
        return cluster
    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
        url,
        **_client_options(timeout, Retry(NoBackoff(), 0), options),
    )
    return client
