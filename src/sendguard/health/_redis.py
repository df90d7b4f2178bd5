"""Redis: PING and memory against ``maxmemory``; the client helper the other Redis probes share.

A probe given a URL makes its own client with short socket timeouts and no retries
(`connect_redis`); given a client, it uses that one. Redis is imported only when a
probe is built from a URL or checks.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from sendguard._core.errors import ConfigError
from sendguard._core.store import connect_redis
from sendguard.health._probe import BaseProbe, describe_error
from sendguard.health._result import Detail, ProbeResult, Status, Thresholds

if TYPE_CHECKING:
    from sendguard._core.store import RedisClient

__all__ = ["RedisProbe", "redis_client", "redis_failure"]


class _ClientHolder:
    """Makes the client from a URL on first use (thread-safe), or holds a given one."""

    def __init__(self, target: str | RedisClient, timeout: float) -> None:
        if not isinstance(target, str) and not hasattr(target, "execute_command"):
            raise ConfigError(f"expected a redis:// URL or a redis client, got {target!r}")
        self._target = target
        self._timeout = min(10.0, timeout)
        self._client: RedisClient | None = None if isinstance(target, str) else target
        self._lock = threading.Lock()

    def get(self) -> RedisClient:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    assert isinstance(self._target, str)
                    self._client = connect_redis(self._target, timeout=self._timeout)
                client = self._client
        return client

    def close(self) -> None:
        """Close a client this holder made (a client passed in belongs to its owner)."""
        if isinstance(self._target, str) and self._client is not None:
            self._client.close()
            self._client = None


def redis_client(target: str | RedisClient, timeout: float) -> _ClientHolder:
    """A lazy holder of the client for `target` (used by every Redis-backed probe)."""
    return _ClientHolder(target, timeout)


def redis_failure(error: Exception, **fields: Any) -> ProbeResult:
    """The failing result for a Redis error."""
    return ProbeResult.failing(f"Redis did not answer: {describe_error(error)}", **fields)


_MEMORY = Thresholds.above(warn=0.80, fail=0.95)
_PING = Thresholds.above(warn=0.25)


class RedisProbe(BaseProbe):
    """PING Redis and compare its memory with ``maxmemory``.

    The observed value is memory in use as a percentage of ``maxmemory`` (thresholds
    are fractions: default warn 0.80, fail 0.95), or in bytes when no ``maxmemory`` is
    set. `latency` judges the PING round trip in seconds.
    """

    component_type = "datastore"

    def __init__(
        self,
        target: str | RedisClient,
        *,
        name: str = "redis",
        critical: bool = True,
        timeout: float = 1.0,
        memory: Thresholds = _MEMORY,
        latency: Thresholds = _PING,
    ) -> None:
        super().__init__(name, critical=critical, timeout=timeout)
        self.client = redis_client(target, timeout)
        self.memory = memory
        self.latency = latency

    def check(self) -> ProbeResult:
        """PING, then INFO memory."""
        import redis

        try:
            client = self.client.get()
            started = time.perf_counter()
            client.ping()
            ping = time.perf_counter() - started
            info: dict[str, Any] = client.info("memory")
        except redis.RedisError as error:
            return redis_failure(error, measurement="memory")
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        details: dict[str, Detail] = {
            "ping_ms": round(ping * 1000, 2), "used_memory": used, "maxmemory": limit,
            "maxmemory_policy": str(info.get("maxmemory_policy", "")),
        }  # fmt: skip
        problems = []
        statuses = [self.latency.judge(ping)]
        if statuses[0] is not Status.PASS:
            problems.append(f"PING took {ping * 1000:.0f} ms")
        if limit > 0:
            share = used / limit
            statuses.append(self.memory.judge(share))
            if statuses[-1] is not Status.PASS:
                problems.append(f"memory at {share:.0%} of maxmemory ({used} of {limit} bytes)")
            value: float = round(share * 100, 1)
            unit = "%"
        else:
            value, unit = used, "By"
        return ProbeResult(
            Status.worst(statuses), "; ".join(problems), observed_value=value,
            observed_unit=unit, measurement="memory", details=details,
        )  # fmt: skip

    def close(self) -> None:
        """Close the client this probe made from a URL."""
        self.client.close()
