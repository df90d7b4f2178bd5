"""`Pacer`: outbound pacing per key (say, per recipient domain) that waits instead of refusing.

Sending to a mail provider or a receiving domain, refusing is the wrong answer: the
message should go a little later. `pace(key)` returns once the key's rate allows another
send, sleeping as long as needed (on the injected clock), and raises `RateLimited` only
if that would take longer than `max_wait`. Sends are spaced evenly by the generic cell
rate algorithm (see `_gcra`), in this process or, with a Redis store, across workers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, RateLimited, StoreUnavailable
from sendguard._core.keys import key_part
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, REDIS_SCHEMES, StoreGate
from sendguard._core.telemetry import Hook, Telemetry
from sendguard.ratelimit._gcra import MemoryPaceBackend
from sendguard.ratelimit._rates import Rate, parse_rates

if TYPE_CHECKING:
    from sendguard.ratelimit.redis_backend import RedisLimitBackend

__all__ = ["Pacer"]


class Pacer:
    """Paces work per key at `rate`, waiting up to `max_wait` seconds per call.

    Args:
        rate: a rate string (``"20/second;1000/hour"``) or `Rate` values.
        burst: sends allowed back to back before spacing applies (1: always spaced).
        store: None (this process) or ``"redis://..."`` (every worker shares the pace;
            while Redis is away, each process paces on its own).
        scope: names the pace in storage, so two pacers on one store do not mix.
    """

    def __init__(
        self,
        rate: str | Sequence[Rate],
        *,
        burst: int = 1,
        store: str | None = None,
        max_wait: float = 30.0,
        scope: str = "pace",
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        timeout: float = DEFAULT_STORE_TIMEOUT,
    ) -> None:
        if not isinstance(max_wait, int | float) or not 0 <= max_wait <= 3600:
            raise ConfigError(f"Pacer.max_wait must be in [0, 3600] seconds, got {max_wait!r}")
        if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
            raise ConfigError(f"Pacer.burst must be a whole number >= 1, got {burst!r}")
        self.rates = parse_rates(rate if isinstance(rate, str) else tuple(rate))
        self.burst = burst
        self.max_wait = float(max_wait)
        self.clock = clock
        self.scope = key_part(scope)
        self.telemetry = Telemetry(hooks)
        self._local = MemoryPaceBackend(clock)
        self._redis: RedisLimitBackend | None = None
        if store is not None and store not in ("memory", "memory://"):
            if not store.startswith(REDIS_SCHEMES):
                raise ConfigError(f"Pacer store must be memory:// or redis://..., got {store!r}")
            from sendguard.ratelimit.redis_backend import RedisLimitBackend

            self._redis = RedisLimitBackend(store, timeout=timeout)
        self._gate = StoreGate("redis", "pacer", self.telemetry, clock=clock)

    def _keys(self, key: str) -> list[str]:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
        return [
            f"sendguard:{{pace:{digest}}}:{self.scope}/{r.amount}/{r.seconds:g}" for r in self.rates
        ]

    def _too_long(self, key: str, wait: float, waited: float) -> RateLimited:
        return RateLimited(
            f"pacing {key!r} would wait {waited + wait:.1f}s, "
            f"more than max_wait={self.max_wait:g}s",
            retry_after=wait,
            key=key,
            policy=self,
            reason="pace_timeout",
        )

    def _take(self, keys: list[str], cost: int) -> float:
        if self._redis is not None and self._gate.available():
            try:
                wait = self._redis.take(keys, self.rates, self.burst, cost)
            except StoreUnavailable as exc:
                self._gate.failed(exc)
            else:
                self._gate.succeeded()
                return wait
        return self._local.take(keys, self.rates, self.burst, cost)

    async def _atake(self, keys: list[str], cost: int) -> float:
        if self._redis is not None and self._gate.available():
            try:
                wait = await self._redis.atake(keys, self.rates, self.burst, cost)
            except StoreUnavailable as exc:
                self._gate.failed(exc)
            else:
                self._gate.succeeded()
                return wait
        return self._local.take(keys, self.rates, self.burst, cost)

    def close(self) -> None:
        """Release the Redis connection, if any."""
        if self._redis is not None:
            self._redis.close()

    async def aclose(self) -> None:
        """Release the Redis connections, asyncio ones included."""
        if self._redis is not None:
            await self._redis.aclose()

    def pace(self, key: str, cost: int = 1) -> float:
        """Block until `key` may go; return the seconds waited."""
        keys, waited = self._keys(key), 0.0
        while (wait := self._take(keys, cost)) > 0:
            if waited + wait > self.max_wait:
                raise self._too_long(key, wait, waited)
            self.clock.sleep(wait)
            waited += wait
        return waited

    async def apace(self, key: str, cost: int = 1) -> float:
        """`pace` for coroutines (sleeps without blocking the event loop)."""
        keys, waited = self._keys(key), 0.0
        while (wait := await self._atake(keys, cost)) > 0:
            if waited + wait > self.max_wait:
                raise self._too_long(key, wait, waited)
            await self.clock.asleep(wait)
            waited += wait
        return waited
