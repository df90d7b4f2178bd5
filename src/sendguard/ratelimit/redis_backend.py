"""Rate-limit counts in Redis: all of a request's limits in one Lua script, one round trip.

This module imports redis-py (``sendguard[redis]``). Keys are
``sendguard:{rl:<digest of the client key>}:<scope>/<amount>/<window>``: the hash tag is
the client, so every limit one client's request touches lives in one Redis Cluster slot.
Each key is a small hash that expires two windows after its last use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import redis
import redis.asyncio

from sendguard._core.errors import StoreUnavailable
from sendguard._core.redis_script import load_script
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, AsyncClients, connect_redis
from sendguard.ratelimit._rates import Rate
from sendguard.ratelimit._window import Counts

if TYPE_CHECKING:
    from sendguard._core.store import AsyncRedisClient, RedisClient

__all__ = ["RedisLimitBackend"]

_SCRIPT = load_script("sendguard.ratelimit", "ratelimit.lua")
_PACE = load_script("sendguard.ratelimit", "pace.lua")
_ERRORS = (redis.RedisError, OSError)


class RedisLimitBackend:
    """The `LimitBackend` contract on Redis. Pass a URL, or clients you already have."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: RedisClient | None = None,
        async_client: AsyncRedisClient | None = None,
        timeout: float = DEFAULT_STORE_TIMEOUT,
        time_ms: Callable[[], int] | None = None,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ValueError("RedisLimitBackend needs a url or a client")
        self.label = "redis"
        self._url = url
        self._timeout = timeout
        self._client = client
        self._aclients = AsyncClients(url, timeout, async_client)
        self._time_ms = time_ms

    def _sync(self) -> RedisClient:
        if self._client is None:
            if self._url is None:
                raise StoreUnavailable("this RedisLimitBackend has no synchronous client")
            self._client = connect_redis(self._url, timeout=self._timeout)
        return self._client

    def _async(self) -> AsyncRedisClient:
        return self._aclients.get()

    def _args(self, rates: Sequence[Rate], cost: int, phase: float) -> list[str | int | float]:
        now = "" if self._time_ms is None else self._time_ms()
        args: list[str | int | float] = [now, cost, round(phase * 1_000_000)]
        for rate in rates:
            args += [rate.amount, round(rate.seconds * 1000)]
        return args

    @staticmethod
    def _parse(raw: Sequence[int]) -> tuple[bool, list[Counts]]:
        values = [int(v) for v in raw]
        seen = [
            Counts(values[i], values[i + 1], values[i + 2] / 1000) for i in range(1, len(values), 3)
        ]
        return values[0] == 1, seen

    def hit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        try:
            raw = _SCRIPT.run(self._sync(), keys, self._args(rates, cost, phase))
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis rate limits: {exc}") from exc
        return self._parse(raw)

    async def ahit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        try:
            raw = await _SCRIPT.arun(self._async(), keys, self._args(rates, cost, phase))
        except Exception as exc:  # any client failure, a closed loop included
            raise StoreUnavailable(f"redis rate limits: {exc}") from exc
        return self._parse(raw)

    def _pace_args(self, rates: Sequence[Rate], burst: int, cost: int) -> list[str | int | float]:
        args: list[str | int | float] = [
            "" if self._time_ms is None else self._time_ms(),
            cost,
            burst,
        ]
        return args + [round(r.seconds / r.amount * 1_000_000) for r in rates]

    def take(self, keys: Sequence[str], rates: Sequence[Rate], burst: int, cost: int) -> float:
        """Pacing (GCRA) in Redis: seconds to wait, 0 when counted; one round trip."""
        try:
            wait = _PACE.run(self._sync(), keys, self._pace_args(rates, burst, cost))
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis pacing: {exc}") from exc
        return int(wait) / 1_000_000

    async def atake(
        self, keys: Sequence[str], rates: Sequence[Rate], burst: int, cost: int
    ) -> float:
        """`take` for coroutines."""
        try:
            wait = await _PACE.arun(self._async(), keys, self._pace_args(rates, burst, cost))
        except Exception as exc:  # any client failure, a closed loop included
            raise StoreUnavailable(f"redis pacing: {exc}") from exc
        return int(wait) / 1_000_000

    def close(self) -> None:
        """Close the synchronous client."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the synchronous client and the running loop's asyncio client."""
        self.close()
        await self._aclients.aclose()
