"""`Pacer`: outbound pacing per key (say, per recipient domain) that waits instead of refusing.

Sending to a mail provider or a receiving domain, refusing is the wrong answer: the
message should go a little later. `pace(key)` returns once the key's rate allows another
send, sleeping for as long as the limit asks (on the injected clock), and raises
`RateLimited` only if that would take longer than `max_wait`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, RateLimited
from sendguard._core.telemetry import Hook
from sendguard.ratelimit._backends import LimitBackend
from sendguard.ratelimit._limiter import Decision, Limit, RateLimiter
from sendguard.ratelimit._rates import Rate, parse_rates

__all__ = ["Pacer"]


class Pacer:
    """Paces work per key at `rate`, waiting up to `max_wait` seconds per call.

    Args:
        rate: a rate string (``"20/second;1000/hour"``) or `Rate` values.
        store: None (this process), ``"redis://..."`` (every worker shares the pace), or a
            `RateLimiter` to share with other users.
        scope: names the pace in storage, so two pacers on one store do not mix.
    """

    def __init__(
        self,
        rate: str | Sequence[Rate],
        *,
        store: str | LimitBackend | RateLimiter | None = None,
        max_wait: float = 30.0,
        scope: str = "pace",
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
    ) -> None:
        if not isinstance(max_wait, int | float) or not 0 <= max_wait <= 3600:
            raise ConfigError(f"Pacer.max_wait must be in [0, 3600] seconds, got {max_wait!r}")
        rates = parse_rates(rate if isinstance(rate, str) else tuple(rate))
        self.limits = tuple(Limit(f"pace:{scope}", r) for r in rates)
        self.max_wait = float(max_wait)
        self.clock = clock
        self.limiter = (
            store
            if isinstance(store, RateLimiter)
            else RateLimiter(store, clock=clock, hooks=hooks)
        )

    def _too_long(self, key: str, decision: Decision, waited: float) -> RateLimited:
        return RateLimited(
            f"pacing {key!r} would wait {waited + decision.retry_after:.1f}s, "
            f"more than max_wait={self.max_wait:g}s",
            retry_after=decision.retry_after,
            key=key,
            policy=self,
            reason="pace_timeout",
        )

    def pace(self, key: str, cost: int = 1) -> float:
        """Block until `key` may go; return the seconds waited."""
        waited = 0.0
        while True:
            decision = self.limiter.check(key, self.limits, cost)
            if decision.allowed:
                return waited
            if waited + decision.retry_after > self.max_wait:
                raise self._too_long(key, decision, waited)
            self.clock.sleep(decision.retry_after)
            waited += decision.retry_after

    async def apace(self, key: str, cost: int = 1) -> float:
        """`pace` for coroutines (sleeps without blocking the event loop)."""
        waited = 0.0
        while True:
            decision = await self.limiter.acheck(key, self.limits, cost)
            if decision.allowed:
                return waited
            if waited + decision.retry_after > self.max_wait:
                raise self._too_long(key, decision, waited)
            await self.clock.asleep(decision.retry_after)
            waited += decision.retry_after
