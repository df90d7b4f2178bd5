"""Breaker state in Redis: the `BreakerStore` contract as one Lua script (one round trip).

This module imports redis-py (``sendguard[redis]``); `open_store("redis://...")` loads it
on demand, or import `RedisBreakerStore` from here to pass your own client. Keys:
``sendguard:{breaker:<name>}:state`` (a hash per breaker, expiring 7 days after its last
change unless an override without expiry holds it) and
``sendguard:{breaker-index}:names`` (a sorted set of the names seen, by first use, trimmed
to the newest `INDEX_SIZE`, for `sendguard breaker list`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio

from sendguard._core.errors import StoreUnavailable
from sendguard._core.keys import make_key
from sendguard._core.redis_script import load_script
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, connect_redis, connect_redis_async
from sendguard.breakers._policy import State
from sendguard.breakers._store import SharedView

if TYPE_CHECKING:
    from sendguard._core.store import AsyncRedisClient, RedisClient

__all__ = ["RedisBreakerStore"]

_SCRIPT = load_script("sendguard.breakers", "breaker.lua")
_STATES = (State.CLOSED, State.OPEN, State.HALF_OPEN)
_OVERRIDES: tuple[State | None, ...] = (None, State.FORCED_OPEN, State.FORCED_CLOSED)
INDEX_KEY = "sendguard:{breaker-index}:names"
INDEX_SIZE = 10_000
_ERRORS = (redis.RedisError, OSError)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _view(raw: Sequence[Any]) -> tuple[bool, SharedView]:
    st, gen, open_left, reop, ov, ovr, ov_left, why, granted, left = raw
    return bool(int(granted)), SharedView(
        state=_STATES[int(st)],
        generation=int(gen),
        open_remaining=int(open_left) / 1000,
        reopenings=int(reop),
        override=_OVERRIDES[int(ov)],
        override_reason=_text(ovr),
        override_remaining=None if int(ov_left) < 0 else int(ov_left) / 1000,
        reason=_text(why),
        probes_left=int(left),
    )


class RedisBreakerStore:
    """Shared breaker state in Redis (or Redis Cluster: each breaker's key is one slot).

    Args:
        url: a ``redis://`` URL; clients are made with `timeout`-second sockets and no
            client-side retries. Or pass `client` / `async_client` you already have.
        timeout: seconds a command may take before it counts as a store failure.
        time_ms: a source of milliseconds to use instead of the server's ``TIME``
            (tests pass a fake clock here; leave it None in production).
    """

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
            raise ValueError("RedisBreakerStore needs a url or a client")
        self.label = "redis"
        self._url = url
        self._timeout = timeout
        self._client = client
        self._aclient = async_client
        self._time_ms = time_ms
        self._indexed: OrderedDict[str, None] = OrderedDict()

    @property
    def client(self) -> RedisClient:
        """The synchronous client (made from the URL on first use)."""
        if self._client is None:
            if self._url is None:
                raise StoreUnavailable("this RedisBreakerStore has no synchronous client")
            self._client = connect_redis(self._url, timeout=self._timeout)
        return self._client

    @property
    def async_client(self) -> AsyncRedisClient:
        """The asyncio client (made from the URL on first use)."""
        if self._aclient is None:
            if self._url is None:
                raise StoreUnavailable("this RedisBreakerStore has no asyncio client")
            self._aclient = connect_redis_async(self._url, timeout=self._timeout)
        return self._aclient

    def _stamp(self) -> float:
        return time.time() if self._time_ms is None else self._time_ms() / 1000

    def _remember(self, name: str) -> None:
        self._indexed[name] = None
        self._indexed.move_to_end(name)
        if len(self._indexed) > INDEX_SIZE:  # bounded, like the registries
            self._indexed.popitem(last=False)

    def _index(self, name: str) -> None:
        """Add `name` to the index (one pipelined round trip, once per name per store)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(INDEX_KEY, {name: self._stamp()})
        pipe.zremrangebyrank(INDEX_KEY, 0, -INDEX_SIZE - 1)
        pipe.execute()
        self._remember(name)

    def _args(self, op: str, rest: Sequence[str | int | float]) -> list[str | int | float]:
        return [op, "" if self._time_ms is None else self._time_ms(), *rest]

    def _run(self, name: str, op: str, *rest: str | int | float) -> tuple[bool, SharedView]:
        key = make_key("breaker", name, "state")
        try:
            if name not in self._indexed:
                self._index(name)
            raw = _SCRIPT.run(self.client, [key], self._args(op, rest))
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis breaker store: {exc}") from exc
        return _view(raw)

    async def _arun(self, name: str, op: str, *rest: str | int | float) -> tuple[bool, SharedView]:
        key = make_key("breaker", name, "state")
        client = self.async_client
        try:
            if name not in self._indexed:
                pipe = client.pipeline(transaction=False)
                pipe.zadd(INDEX_KEY, {name: self._stamp()})
                pipe.zremrangebyrank(INDEX_KEY, 0, -INDEX_SIZE - 1)
                await pipe.execute()
                self._remember(name)
            raw = await _SCRIPT.arun(client, [key], self._args(op, rest))
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis breaker store: {exc}") from exc
        return _view(raw)

    # --- the contract, synchronous ----------------------------------------------------

    def read(self, name: str) -> SharedView:
        return self._run(name, "read")[1]

    def trip(
        self, name: str, generation: int, open_for: float, reopenings: int, reason: str
    ) -> SharedView:
        return self._run(name, "trip", generation, _ms(open_for), reopenings, reason)[1]

    def acquire_probe(
        self, name: str, probes: int, max_wait: float, reopen_for: float
    ) -> tuple[bool, SharedView]:
        return self._run(name, "probe", probes, _ms(max_wait), _ms(reopen_for))

    def release_probe(self, name: str, generation: int) -> SharedView:
        return self._run(name, "release", generation)[1]

    def report_probe(
        self, name: str, generation: int, ok: bool, needed: int, reopen_for: float
    ) -> SharedView:
        return self._run(name, "report", generation, int(ok), needed, _ms(reopen_for))[1]

    def set_override(
        self, name: str, override: State | None, reason: str, ttl: float | None
    ) -> SharedView:
        code = _OVERRIDES.index(override)
        return self._run(name, "override", code, reason, 0 if ttl is None else max(1, _ms(ttl)))[1]

    def reset(self, name: str) -> SharedView:
        return self._run(name, "reset")[1]

    def names(self) -> list[str]:
        try:
            return sorted(_text(n) for n in self.client.zrange(INDEX_KEY, 0, -1))
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis breaker store: {exc}") from exc

    # --- the contract, asyncio (the operations on a call's path) ------------------------

    async def aread(self, name: str) -> SharedView:
        return (await self._arun(name, "read"))[1]

    async def atrip(
        self, name: str, generation: int, open_for: float, reopenings: int, reason: str
    ) -> SharedView:
        return (await self._arun(name, "trip", generation, _ms(open_for), reopenings, reason))[1]

    async def aacquire_probe(
        self, name: str, probes: int, max_wait: float, reopen_for: float
    ) -> tuple[bool, SharedView]:
        return await self._arun(name, "probe", probes, _ms(max_wait), _ms(reopen_for))

    async def arelease_probe(self, name: str, generation: int) -> SharedView:
        return (await self._arun(name, "release", generation))[1]

    async def areport_probe(
        self, name: str, generation: int, ok: bool, needed: int, reopen_for: float
    ) -> SharedView:
        return (await self._arun(name, "report", generation, int(ok), needed, _ms(reopen_for)))[1]

    def close(self) -> None:
        """Close the synchronous client (the asyncio one closes with `aclose`)."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close both clients."""
        self.close()
        if self._aclient is not None:
            await self._aclient.aclose()
