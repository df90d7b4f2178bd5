"""A bulkhead shared by every process through Redis: slots are leases that expire.

Imports redis-py. A slot is a member of a sorted set scored by its expiry, so a process
that dies holding slots loses them after `Bulkhead.lease` seconds. A live process keeps
its slots: a daemon thread renews every lease it holds, in one round trip, each third of
a lease, so calls longer than the lease stay counted. Waiting for a slot polls with
short, growing pauses up to the bulkhead's `max_wait`. If Redis is away, the gate falls
back to its local cap (per process) and says so through the store gate.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import TYPE_CHECKING

import redis

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import StoreUnavailable
from sendguard._core.keys import make_key
from sendguard._core.redis_script import load_script
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, AsyncClients, StoreGate, connect_redis
from sendguard._core.telemetry import Telemetry
from sendguard.ratelimit._bulkhead import Bulkhead, BulkheadGate

if TYPE_CHECKING:
    from sendguard._core.store import RedisClient

__all__ = ["SharedBulkheadGate"]

_SCRIPT = load_script("sendguard.ratelimit", "bulkhead.lua")
_ERRORS = (redis.RedisError, OSError)
_POLL = (0.005, 0.05)


class SharedBulkheadGate(BulkheadGate):
    """A `BulkheadGate` whose slots are Redis leases shared by every process."""

    def __init__(
        self,
        name: str,
        policy: Bulkhead,
        url: str,
        telemetry: Telemetry,
        *,
        timeout: float = DEFAULT_STORE_TIMEOUT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(name, policy)
        self.key = make_key("bulkhead", name, "slots")
        self._url = url
        self._timeout = timeout
        self._client: RedisClient | None = None
        self._aclients = AsyncClients(url, timeout, None)
        self._held = 0
        self._gate = StoreGate("redis", "bulkhead", telemetry)
        self._lease_ms = round(policy.lease * 1000)
        self._clock = clock
        self._tokens: set[str] = set()
        self._renewer: threading.Thread | None = None
        self._stopping = threading.Event()

    def _now_ms(self) -> str | int:
        """The time the script reads: Redis's own (one clock for every host), or the
        injected clock's when one was given (tests, drills)."""
        return "" if self._clock is SYSTEM_CLOCK else round(self._clock.wall() * 1000)

    def _args(self, op: str, token: str) -> list[str | int | float]:
        return [op, self._now_ms(), token, self.capacity, self._lease_ms]

    def _took(self, token: str) -> str:
        with self._lock:
            self._held += 1
            self._tokens.add(token)
            if self._renewer is None and not self._stopping.is_set():
                self._renewer = threading.Thread(
                    target=self._renew_until_closed,
                    name=f"sendguard-lease-{self.name}",
                    daemon=True,
                )
                self._renewer.start()
        return token

    def _gave_back(self, token: str) -> None:
        with self._lock:
            self._held -= 1
            self._tokens.discard(token)

    def renew(self) -> int:
        """Extend every lease this process holds by a full `lease`, in one round trip.

        Returns how many were still held (a lease that ran out, say while the process
        was paused, is not taken back: its slot may have gone to another caller).
        """
        with self._lock:
            tokens = list(self._tokens)
        if not tokens or not self._gate.available():
            return 0
        try:
            if self._client is None:
                self._client = connect_redis(self._url, timeout=self._timeout)
            args: list[str | int | float] = ["renew", self._now_ms(), self._lease_ms, *tokens]
            renewed = int(_SCRIPT.run(self._client, [self.key], args))
        except _ERRORS as exc:
            self._gate.failed(exc)
            return 0
        self._gate.succeeded()
        return renewed

    def _renew_until_closed(self) -> None:
        interval = self.policy.lease / 3
        while not self._stopping.wait(interval):
            if self._tokens:
                self.renew()

    def _try(self, token: str) -> bool | None:
        """Take a shared slot (True/False), or None when Redis is away."""
        if not self._gate.available():
            return None
        if self._client is None:
            self._client = connect_redis(self._url, timeout=self._timeout)
        try:
            taken = bool(_SCRIPT.run(self._client, [self.key], self._args("enter", token)))
        except _ERRORS as exc:
            self._gate.failed(exc)
            return None
        self._gate.succeeded()
        return taken

    async def _atry(self, token: str) -> bool | None:
        if not self._gate.available():
            return None
        try:
            taken = bool(
                await _SCRIPT.arun(self._aclients.get(), [self.key], self._args("enter", token))
            )
        except Exception as exc:  # any client failure, a closed loop included
            self._gate.failed(StoreUnavailable(str(exc)))
            return None
        self._gate.succeeded()
        return taken

    def enter(self, max_wait: float | None = None) -> object | None:
        wait = self.policy.max_wait if max_wait is None else max_wait
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        pause = _POLL[0]
        while True:
            taken = self._try(token)
            if taken is None:
                return super().enter(max(0.0, deadline - time.monotonic()))
            if taken:
                return self._took(token)
            if time.monotonic() + pause > deadline:
                self.rejected += 1
                return None
            time.sleep(pause)
            pause = min(_POLL[1], pause * 2)

    async def aenter(self, max_wait: float | None = None) -> object | None:
        wait = self.policy.max_wait if max_wait is None else max_wait
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        pause = _POLL[0]
        while True:
            taken = await self._atry(token)
            if taken is None:
                return await super().aenter(max(0.0, deadline - time.monotonic()))
            if taken:
                return self._took(token)
            if time.monotonic() + pause > deadline:
                self.rejected += 1
                return None
            await asyncio.sleep(pause)
            pause = min(_POLL[1], pause * 2)

    def close(self) -> None:
        """Stop renewing leases and close the synchronous client."""
        self._stopping.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=self._timeout + 1.0)
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close both clients."""
        self.close()
        await self._aclients.aclose()

    def leave(self, slot: object = True) -> None:
        if not isinstance(slot, str):  # a local slot, taken while Redis was away
            super().leave(slot)
            return
        self._gave_back(slot)
        try:
            if self._client is None:
                self._client = connect_redis(self._url, timeout=self._timeout)
            _SCRIPT.run(self._client, [self.key], ["leave", "", slot])
        except _ERRORS as exc:  # the lease expires by itself
            self._gate.failed(exc)

    async def aleave(self, slot: object = True) -> None:
        if not isinstance(slot, str):
            super().leave(slot)
            return
        self._gave_back(slot)
        try:
            await _SCRIPT.arun(self._aclients.get(), [self.key], ["leave", "", slot])
        except Exception as exc:  # the lease expires by itself
            self._gate.failed(StoreUnavailable(str(exc)))

    def try_enter(self) -> object | None:
        return None

    local = False

    @property
    def in_flight(self) -> int:
        """Slots this process holds now (shared leases and local fallback slots)."""
        return self._held + self._in_use
