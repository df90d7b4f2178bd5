"""`RateLimiter`: one backend round trip for all of a request's limits, with a fallback.

The limiter turns a client key and the limits that apply to a request into storage keys,
asks the backend once, and returns a `Decision` holding every limit's state (for the
RateLimit headers) and, when refused, the time to wait. If the shared store fails, the
`on_store_failure` direction decides: ``"local"`` (the default) keeps limiting in this
process, ``"allow"`` admits without counting, ``"deny"`` refuses; the store is retried
after a backoff and a telemetry event says what happened.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard._core.keys import key_part
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, REDIS_SCHEMES, StoreGate
from sendguard._core.telemetry import Hook, Telemetry
from sendguard.ratelimit._backends import LimitBackend, LimitsLibraryBackend, MemoryLimitBackend
from sendguard.ratelimit._rates import Rate
from sendguard.ratelimit._window import Counts, LimitState, state_of

__all__ = ["NO_LIMITS", "Decision", "Limit", "OnStoreFailure", "RateLimiter", "open_backend"]

OnStoreFailure = Literal["local", "allow", "deny"]


def _seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


@dataclass(frozen=True, slots=True)
class Limit:
    """A `Rate` applied in a scope: ``"app"``, ``"route:GET /x"``, ``"group:exports"``."""

    scope: str
    rate: Rate
    name: str = field(init=False)
    """The policy name in the RateLimit headers: its scope's kind and window, ``route-60s``
    (the quota is the policy's ``q``; a scope has at most one limit per window)."""
    slug: str = field(init=False)
    """The scope and rate as a storage key suffix."""

    def __post_init__(self) -> None:
        if not isinstance(self.rate, Rate):
            raise ConfigError(f"Limit.rate must be a Rate, got {self.rate!r}")
        kind = self.scope.split(":", 1)[0]
        window = _seconds(self.rate.seconds)
        object.__setattr__(self, "name", f"{kind}-{window}s")
        slug = f"{key_part(self.scope)}/{self.rate.amount}/{window}"
        object.__setattr__(self, "slug", slug)


class Decision(NamedTuple):
    """The answer for one request: admitted or not, and every limit's state."""

    allowed: bool
    limits: tuple[Limit, ...]
    states: tuple[LimitState, ...]
    retry_after: float
    """Seconds to wait before a retry can be admitted (0 when allowed)."""
    degraded: bool = False
    """True when the shared store was away and the decision was taken otherwise."""
    store_refused: bool = False
    """True when the store was away and ``on_store_failure="deny"`` refused the request."""

    @property
    def tightest(self) -> tuple[Limit, LimitState] | None:
        """The limit with the least room left (what a single RateLimit item reports)."""
        if not self.states:
            return None
        i = min(range(len(self.states)), key=lambda k: (self.states[k].remaining, -k))
        return self.limits[i], self.states[i]


NO_LIMITS = Decision(True, (), (), 0.0)
"""The decision for a request no limit applies to."""

_new_decision = tuple.__new__


def open_backend(
    store: str | LimitBackend | None, clock: Clock = SYSTEM_CLOCK, *, timeout: float
) -> LimitBackend:
    """A backend from None / ``memory://`` / ``redis://...`` / any `limits` storage URI."""
    if store is None or store in ("memory", "memory://"):
        return MemoryLimitBackend(clock)
    if isinstance(store, str):
        if store.startswith(REDIS_SCHEMES):
            from sendguard.ratelimit.redis_backend import RedisLimitBackend

            return RedisLimitBackend(store, timeout=timeout)
        if "://" in store:
            return LimitsLibraryBackend(store)
        raise ConfigError(f"unknown rate-limit store {store!r}: use memory://, redis://...")
    return store


class RateLimiter:
    """Checks requests against limits in a backend (memory by default, or Redis)."""

    def __init__(
        self,
        store: str | LimitBackend | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        on_store_failure: OnStoreFailure = "local",
        timeout: float = DEFAULT_STORE_TIMEOUT,
        max_keys: int = 100_000,
    ) -> None:
        if on_store_failure not in ("local", "allow", "deny"):
            raise ConfigError(
                f"on_store_failure must be 'local', 'allow' or 'deny', got {on_store_failure!r}"
            )
        self.clock = clock
        self.telemetry = Telemetry(hooks)
        self.backend = open_backend(store, clock, timeout=timeout)
        self.on_store_failure: OnStoreFailure = on_store_failure
        self._local: MemoryLimitBackend = (
            self.backend
            if isinstance(self.backend, MemoryLimitBackend)
            else MemoryLimitBackend(clock, max_keys=max_keys)
        )
        self._gate = StoreGate(self.backend.label, "ratelimit", self.telemetry, clock=clock)
        self._digests: dict[str, tuple[str, float]] = {}
        self._key_cache: dict[
            tuple[str, int], tuple[tuple[list[str], float, list[Rate]], Sequence[Limit]]
        ] = {}

    @property
    def in_process(self) -> bool:
        """True when counts live in this process (no store round trip to await)."""
        return self.backend is self._local

    @property
    def shared(self) -> bool:
        """True when the backend is a shared store that is currently answering."""
        return self.backend is not self._local and not self._gate.is_down

    def _keys(self, key: str, limits: Sequence[Limit]) -> tuple[list[str], float, list[Rate]]:
        """Storage keys, window phase and rates of `key` under `limits` (cached per route
        and key: none of it changes between requests)."""
        found = self._key_cache.get((key, id(limits)))
        if found is not None and found[1] is limits:
            return found[0]
        digest, phase = self._digest(key)
        made = (
            [f"sendguard:{{rl:{digest}}}:{limit.slug}" for limit in limits],
            phase,
            [limit.rate for limit in limits],
        )
        if len(self._key_cache) >= 65_536:
            self._key_cache.clear()
        self._key_cache[(key, id(limits))] = (made, limits)
        return made

    def _digest(self, key: str) -> tuple[str, float]:
        """The key's digest (never the key itself goes to storage) and its window phase."""
        found = self._digests.get(key)
        if found is None:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12)
            text = digest.hexdigest()
            found = (text, int(text[:6], 16) / 0x1000000)
            if len(self._digests) >= 65_536:  # bounded, like everything per key
                self._digests.clear()
            self._digests[key] = found
        return found

    def storage_keys(self, key: str, limits: Sequence[Limit]) -> list[str]:
        """Storage keys for `key` under `limits`; the client key is digested, never stored."""
        return list(self._keys(key, limits)[0])

    def _decide(
        self, limits: Sequence[Limit], cost: int, outcome: tuple[bool, list[Counts]] | None
    ) -> Decision:
        if outcome is None:  # the store is away and the policy says not to count locally
            allowed = self.on_store_failure == "allow"
            zero = Counts(0, 0, 0.0)
            states = tuple(state_of(lim.rate, zero, cost, True) for lim in limits)
            wait = 0.0 if allowed else max(1.0, self._gate.base)
            return Decision(allowed, tuple(limits), states, wait, True, not allowed)
        allowed, seen = outcome
        if allowed:  # the common case, without a call per limit
            states = tuple(
                LimitState(
                    lim.rate,
                    True,
                    max(
                        0,
                        math.floor(
                            lim.rate.amount
                            - c.previous * max(0.0, 1.0 - c.elapsed / lim.rate.seconds)
                            - c.current
                            - cost
                        ),
                    ),
                    max(0.0, lim.rate.seconds - c.elapsed),
                    0.0,
                )
                for lim, c in zip(limits, seen, strict=True)
            )
            return Decision(
                True, limits if isinstance(limits, tuple) else tuple(limits), states, 0.0
            )
        states = tuple(
            state_of(lim.rate, counts, cost, allowed)
            for lim, counts in zip(limits, seen, strict=True)
        )
        refused = [s.retry_after for s in states if not s.allowed]
        return Decision(allowed, tuple(limits), states, max(refused, default=0.0))

    def _use_store(self) -> bool:
        """Should this request go to the shared store? (False: local, or the store rests.)"""
        return self.backend is not self._local and self._gate.available()

    def _stored(
        self, limits: Sequence[Limit], cost: int, outcome: tuple[bool, list[Counts]]
    ) -> Decision:
        self._gate.succeeded()
        return self._decide(limits, cost, outcome)

    def _without_store(
        self,
        keys: list[str],
        rates: list[Rate],
        limits: Sequence[Limit],
        cost: int,
        phase: float,
        error: StoreUnavailable | None,
    ) -> Decision:
        """Decide locally: the memory store itself, or the fallback while the store is away."""
        if error is not None:
            self._gate.failed(error)
        if self.backend is self._local:
            return self._decide(limits, cost, self._local.hit(keys, rates, cost, phase))
        if self.on_store_failure != "local":
            return self._decide(limits, cost, None)
        d = self._decide(limits, cost, self._local.hit(keys, rates, cost, phase))
        return d._replace(degraded=True)

    def check(self, key: str, limits: Sequence[Limit], cost: int = 1) -> Decision:
        """Count a request of `cost` by `key` under `limits` (all or none); decide."""
        if not limits:
            return NO_LIMITS
        keys, phase, rates = self._keys(key, limits)
        if self.backend is self._local:  # in process: the one-pass common case first
            states = self._local.admit(keys, rates, cost, phase)
            if states is not None:  # admitted: the NamedTuple built without its constructor
                held = limits if type(limits) is tuple else tuple(limits)
                return _new_decision(Decision, (True, held, states, 0.0, False, False))
            return self._without_store(keys, rates, limits, cost, phase, None)
        if self._use_store():
            try:
                outcome = self.backend.hit(keys, rates, cost, phase)
            except StoreUnavailable as exc:
                return self._without_store(keys, rates, limits, cost, phase, exc)
            return self._stored(limits, cost, outcome)
        return self._without_store(keys, rates, limits, cost, phase, None)

    async def acheck(self, key: str, limits: Sequence[Limit], cost: int = 1) -> Decision:
        """`check` for coroutines: the store round trip is awaited."""
        if not limits:
            return NO_LIMITS
        keys, phase, rates = self._keys(key, limits)
        if self._use_store():
            try:
                outcome = await self.backend.ahit(keys, rates, cost, phase)
            except StoreUnavailable as exc:
                return self._without_store(keys, rates, limits, cost, phase, exc)
            return self._stored(limits, cost, outcome)
        return self._without_store(keys, rates, limits, cost, phase, None)

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    async def aclose(self) -> None:
        """Release the backend's connections, the running loop's asyncio client included
        (call it from the loop that used `acheck`)."""
        closer = getattr(self.backend, "aclose", None)
        if closer is not None:
            await closer()
        else:
            self.backend.close()
