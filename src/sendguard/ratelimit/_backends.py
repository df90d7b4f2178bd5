"""Where counts live: the backend contract, the in-process backend, and `limits` storages.

A backend answers one question atomically for all of a request's limits: given these
storage keys and rates, is there room for `cost` in every one, and if so count it. It
returns the counts it saw, from which `_window.state_of` tells the client the rest.

- `MemoryLimitBackend`: one process, the embedded default and the fallback when a
  shared store is down.
- `RedisLimitBackend` (module `redis_backend`): one Lua script, one round trip, for all
  of a request's limits.
- `LimitsLibraryBackend`: any storage the `limits` library supports (memcached://,
  mongodb://, ...), through its sliding-window-counter strategy. It costs a round trip
  per limit and is not all-or-nothing across limits; use it where those stores are what
  you have.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard.ratelimit._rates import Rate
from sendguard.ratelimit._window import Counts, LimitState

__all__ = ["LimitBackend", "LimitsLibraryBackend", "MemoryLimitBackend"]

_new_state = tuple.__new__


class LimitBackend(Protocol):
    """Counts requests per key and rate; `hit` is atomic across all the limits it gets."""

    label: str

    def hit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        """Admit `cost` under every rate or none; return (admitted, counts seen before).

        `phase` in [0, 1) shifts the start of this client's windows by that share of
        each window.
        """
        ...

    async def ahit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        """`hit` without blocking the event loop."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryLimitBackend:
    """Counts in this process: ``key -> [window index, previous, current, window]``.

    Bounded: past `max_keys` entries, stale ones are swept, then the oldest dropped (a
    dropped key starts again from zero, so memory pressure errs towards admitting).
    """

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, max_keys: int = 100_000) -> None:
        if not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigError(f"max_keys must be a whole number >= 1, got {max_keys!r}")
        self.label = "memory"
        self.max_keys = max_keys
        self._now = clock.monotonic
        self._lock = threading.Lock()
        self._data: dict[str, list[float]] = {}

    def hit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        now = self._now()
        seen: list[Counts] = []
        rolled: list[tuple[list[float], int, int, int]] = []
        allowed = True
        data = self._data
        with self._lock:
            for key, rate in zip(keys, rates, strict=True):
                w = rate.seconds
                start = now - phase * w
                idx = int(start // w)
                entry = data.get(key)
                if entry is None:
                    entry = data[key] = [idx, 0, 0, w]
                    prev = curr = 0
                elif entry[0] == idx:
                    prev, curr = int(entry[1]), int(entry[2])
                elif entry[0] + 1 == idx:  # the window rolled over: current becomes previous
                    prev, curr = int(entry[2]), 0
                else:
                    prev = curr = 0
                elapsed = start - idx * w
                if prev * max(0.0, 1.0 - elapsed / w) + curr + cost > rate.amount:
                    allowed = False
                seen.append(Counts(prev, curr, elapsed))
                rolled.append((entry, idx, prev, curr))
            if allowed:
                for entry, idx, prev, curr in rolled:
                    entry[0], entry[1], entry[2] = idx, prev, curr + cost
            if len(data) > self.max_keys:
                self._sweep(now)
        return allowed, seen

    async def ahit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        return self.hit(keys, rates, cost, phase)

    def admit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[LimitState, ...] | None:
        """`hit` for the common case, in one pass: every limit's state once `cost` is
        counted under all of them, or None (nothing counted) if any has no room.

        The same arithmetic as `hit` followed by `state_of`, without the intermediate
        counts: this runs on every request of an in-process guard. A property test
        (tests/ratelimit/test_limits_contract.py) holds the two paths to the same answers.
        """
        now = self._now()
        data = self._data
        states: list[LimitState] = []
        with self._lock:
            for key, rate in zip(keys, rates, strict=True):
                w = rate.seconds
                start = now - phase * w
                idx = int(start // w)
                entry = data.get(key)
                if entry is None:
                    entry = data[key] = [idx, 0, 0, w]
                    prev = curr = 0.0
                elif entry[0] == idx:
                    prev, curr = entry[1], entry[2]
                elif entry[0] + 1 == idx:
                    prev, curr = entry[2], 0.0
                else:
                    prev = curr = 0.0
                elapsed = start - idx * w
                left = rate.amount - prev * (1.0 - elapsed / w) - curr - cost
                if left < 0:
                    # Refused: take back what the limits before this one counted. Their
                    # windows stay rolled forward, which changes no estimate.
                    for counted in keys[: len(states)]:
                        data[counted][2] -= cost
                    return None
                # Counted at once (the refusal above undoes it), so the common case makes
                # one pass; tuple.__new__ skips the NamedTuple's Python-level constructor.
                entry[0], entry[1], entry[2] = idx, prev, curr + cost
                states.append(_new_state(LimitState, (rate, True, int(left), w - elapsed, 0.0)))
            if len(data) > self.max_keys:
                self._sweep(now)
        return tuple(states)

    def _sweep(self, now: float) -> None:
        stale = [k for k, e in self._data.items() if int(now // e[3]) > e[0] + 2]
        for k in stale:
            del self._data[k]
        excess = len(self._data) - self.max_keys
        if excess > 0:
            for k in list(self._data)[: max(excess, self.max_keys // 10)]:
                del self._data[k]

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        """Nothing to release."""


class LimitsLibraryBackend:
    """Any `limits` storage (by URI, e.g. ``memcached://host:11211``) as a backend.

    Uses the library's sliding-window-counter strategy. Its API works one limit at a
    time, so a request costs one round trip per limit, and a request refused by its
    second limit has already counted against its first.
    """

    def __init__(self, uri: str) -> None:
        from limits.storage import storage_from_string
        from limits.strategies import SlidingWindowCounterRateLimiter

        try:
            storage = storage_from_string(uri)
        except Exception as bad:  # limits raises several types for a bad URI
            raise ConfigError(f"limits cannot use storage {uri!r}: {bad}") from None
        self.label = uri.split(":", 1)[0]
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[Rate, Any] = {}

    def _item(self, rate: Rate) -> Any:
        item = self._items.get(rate)
        if item is None:
            from limits import RateLimitItemPerSecond

            item = self._items[rate] = RateLimitItemPerSecond(rate.amount, int(rate.seconds))
        return item

    def hit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        allowed = True
        seen: list[Counts] = []
        try:
            for key, rate in zip(keys, rates, strict=True):
                item = self._item(rate)
                stats = self._limiter.get_window_stats(item, key)
                used = rate.amount - stats.remaining
                seen.append(Counts(0, used, 0.0))
                if allowed and not self._limiter.hit(item, key, cost=cost):
                    allowed = False
        except Exception as exc:  # the library's storages raise their drivers' errors
            raise StoreUnavailable(f"limits storage {self.label}: {exc}") from exc
        return allowed, seen

    async def ahit(
        self, keys: Sequence[str], rates: Sequence[Rate], cost: int, phase: float = 0.0
    ) -> tuple[bool, list[Counts]]:
        import asyncio

        return await asyncio.to_thread(self.hit, keys, rates, cost, phase)

    def close(self) -> None:
        """Nothing to release (the library keeps its own connections)."""
