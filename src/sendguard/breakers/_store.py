"""The breaker storage contract: the state every process sharing a breaker must agree on.

A store keeps, per breaker name: the machine state (closed, open, half-open), a
generation that increases on every transition, when an open breaker may be probed, the
half-open probe permits, and an operator override. Windows of call outcomes are not in
the store: each process judges its own calls, and the store makes a trip anywhere an
open breaker everywhere.

Every operation is a compare-and-set against the generation the caller last saw, so a
process acting on a stale view changes nothing and gets the fresh view back. Durations
cross the store as seconds remaining, never as timestamps, so processes never compare
clocks. `MemoryBreakerStore` implements the contract for one process; the Redis store
implements the same operations atomically in one Lua script, and one behaviour suite
runs over both.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard.breakers._policy import State

__all__ = ["AsyncBreakerStore", "BreakerStore", "MemoryBreakerStore", "SharedView"]


@dataclass(frozen=True, slots=True)
class SharedView:
    """A breaker's shared state as the store saw it when it answered."""

    state: State
    """CLOSED, OPEN or HALF_OPEN."""
    generation: int
    open_remaining: float
    """Seconds until an open breaker may be probed (0 when not open)."""
    reopenings: int
    """How many times in a row it has opened without closing (drives `open_backoff`)."""
    override: State | None = None
    """FORCED_OPEN or FORCED_CLOSED while an operator override is in force."""
    override_reason: str = ""
    override_remaining: float | None = None
    """Seconds until the override lapses; None when it lasts until cleared."""
    reason: str = ""
    """Why the breaker entered its state (`failure_rate`, `probe_failed`, ...)."""
    probes_left: int = 0


CLOSED_VIEW = SharedView(State.CLOSED, 0, 0.0, 0)


class BreakerStore(Protocol):
    """Shared breaker state. Operations return the view after they applied (or not)."""

    label: str

    def read(self, name: str) -> SharedView:
        """The current view."""
        ...

    def trip(
        self, name: str, generation: int, open_for: float, reopenings: int, reason: str
    ) -> SharedView:
        """Open the breaker for `open_for` seconds if it is still at `generation` and not open."""
        ...

    def acquire_probe(
        self, name: str, probes: int, max_wait: float, reopen_for: float
    ) -> tuple[bool, SharedView]:
        """Take a half-open probe permit, first moving an expired open breaker to half-open
        with `probes` permits. With every permit out and none granted for `max_wait`
        seconds (a probe hung or its process died), reopen for `reopen_for` seconds."""
        ...

    def release_probe(self, name: str, generation: int) -> SharedView:
        """Give back a permit whose call was ignored (neither success nor failure)."""
        ...

    def report_probe(
        self, name: str, generation: int, ok: bool, needed: int, reopen_for: float
    ) -> SharedView:
        """Count a probe result: `needed` successes close it, one failure reopens it."""
        ...

    def set_override(
        self, name: str, override: State | None, reason: str, ttl: float | None
    ) -> SharedView:
        """Force the breaker open or closed (or clear with None) for `ttl` seconds."""
        ...

    def reset(self, name: str) -> SharedView:
        """Clear any override and close the breaker with a new generation."""
        ...

    def names(self) -> list[str]:
        """Names of the breakers this store has seen."""
        ...

    def close(self) -> None:
        """Release connections (nothing to do for the memory store)."""
        ...


class AsyncBreakerStore(Protocol):
    """The operations a call's path needs, as coroutines (never blocking the event loop)."""

    async def aread(self, name: str) -> SharedView: ...

    async def atrip(
        self, name: str, generation: int, open_for: float, reopenings: int, reason: str
    ) -> SharedView: ...

    async def aacquire_probe(
        self, name: str, probes: int, max_wait: float, reopen_for: float
    ) -> tuple[bool, SharedView]: ...

    async def arelease_probe(self, name: str, generation: int) -> SharedView: ...

    async def areport_probe(
        self, name: str, generation: int, ok: bool, needed: int, reopen_for: float
    ) -> SharedView: ...


class _AsyncFromSync:
    """Async twins for a store whose operations never wait (the memory store)."""

    async def aread(self: BreakerStore, name: str) -> SharedView:
        return self.read(name)

    async def atrip(
        self: BreakerStore,
        name: str,
        generation: int,
        open_for: float,
        reopenings: int,
        reason: str,
    ) -> SharedView:
        return self.trip(name, generation, open_for, reopenings, reason)

    async def aacquire_probe(
        self: BreakerStore, name: str, probes: int, max_wait: float, reopen_for: float
    ) -> tuple[bool, SharedView]:
        return self.acquire_probe(name, probes, max_wait, reopen_for)

    async def arelease_probe(self: BreakerStore, name: str, generation: int) -> SharedView:
        return self.release_probe(name, generation)

    async def areport_probe(
        self: BreakerStore, name: str, generation: int, ok: bool, needed: int, reopen_for: float
    ) -> SharedView:
        return self.report_probe(name, generation, ok, needed, reopen_for)


@dataclass(slots=True)
class _Record:
    state: State = State.CLOSED
    generation: int = 0
    open_until: float = 0.0
    reopenings: int = 0
    probes_left: int = 0
    probes_ok: int = 0
    half_open_since: float = 0.0
    override: State | None = None
    override_reason: str = ""
    override_until: float | None = None
    reason: str = ""

    def open(self, now: float, seconds: float, reopenings: int, reason: str) -> None:
        self.state = State.OPEN
        self.generation += 1
        self.open_until = now + seconds
        self.reopenings = reopenings
        self.reason = reason

    def view(self, now: float) -> SharedView:
        return SharedView(
            state=self.state,
            generation=self.generation,
            open_remaining=max(0.0, self.open_until - now) if self.state is State.OPEN else 0.0,
            reopenings=self.reopenings,
            override=self.override,
            override_reason=self.override_reason,
            override_remaining=(
                None if self.override_until is None else max(0.0, self.override_until - now)
            ),
            reason=self.reason,
            probes_left=self.probes_left,
        )


class MemoryBreakerStore(_AsyncFromSync):
    """Breaker state shared by the breakers of one process (the embedded default)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, label: str = "memory") -> None:
        self.label = label
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def _get(self, name: str, now: float) -> _Record:
        rec = self._records.get(name)
        if rec is None:
            rec = self._records[name] = _Record()
        if (
            rec.override is not None
            and rec.override_until is not None
            and now >= rec.override_until
        ):
            rec.override, rec.override_reason, rec.override_until = None, "", None
        return rec

    def read(self, name: str) -> SharedView:
        now = self._clock.monotonic()
        with self._lock:
            return self._get(name, now).view(now)

    def trip(
        self, name: str, generation: int, open_for: float, reopenings: int, reason: str
    ) -> SharedView:
        now = self._clock.monotonic()
        with self._lock:
            rec = self._get(name, now)
            if rec.generation == generation and rec.state is not State.OPEN:
                rec.open(now, open_for, reopenings, reason)
            return rec.view(now)

    def acquire_probe(
        self, name: str, probes: int, max_wait: float, reopen_for: float
    ) -> tuple[bool, SharedView]:
        now = self._clock.monotonic()
        with self._lock:
            rec = self._get(name, now)
            granted = False
            if rec.state is State.OPEN and now >= rec.open_until:
                rec.state = State.HALF_OPEN
                rec.generation += 1
                rec.probes_left, rec.probes_ok, rec.half_open_since = probes, 0, now
                rec.reason = "open_elapsed"
            if rec.state is State.HALF_OPEN:
                if rec.probes_left > 0:
                    rec.probes_left -= 1
                    rec.half_open_since = now
                    granted = True
                elif now - rec.half_open_since > max_wait:
                    rec.open(now, reopen_for, rec.reopenings + 1, "half_open_timeout")
            return granted, rec.view(now)

    def release_probe(self, name: str, generation: int) -> SharedView:
        now = self._clock.monotonic()
        with self._lock:
            rec = self._get(name, now)
            if rec.state is State.HALF_OPEN and rec.generation == generation:
                rec.probes_left += 1
            return rec.view(now)

    def report_probe(
        self, name: str, generation: int, ok: bool, needed: int, reopen_for: float
    ) -> SharedView:
        now = self._clock.monotonic()
        with self._lock:
            rec = self._get(name, now)
            if rec.state is State.HALF_OPEN and rec.generation == generation:
                if not ok:
                    rec.open(now, reopen_for, rec.reopenings + 1, "probe_failed")
                else:
                    rec.probes_ok += 1
                    if rec.probes_ok >= needed:
                        rec.state = State.CLOSED
                        rec.generation += 1
                        rec.reopenings = 0
                        rec.reason = "probes_succeeded"
            return rec.view(now)

    def set_override(
        self, name: str, override: State | None, reason: str, ttl: float | None
    ) -> SharedView:
        now = self._clock.monotonic()
        with self._lock:
            rec = self._get(name, now)
            rec.override = override
            rec.override_reason = reason if override is not None else ""
            rec.override_until = None if (ttl is None or override is None) else now + ttl
            return rec.view(now)

    def reset(self, name: str) -> SharedView:
        now = self._clock.monotonic()
        with self._lock:
            rec = self._get(name, now)
            generation = rec.generation
            self._records[name] = rec = _Record(generation=generation + 1, reason="reset")
            return rec.view(now)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._records)

    def close(self) -> None:
        """Nothing to release."""

    def seed(self, name: str, view: SharedView) -> None:
        """Start `name` from `view` (used when a breaker falls back from a shared store)."""
        now = self._clock.monotonic()
        with self._lock:
            self._records[name] = _Record(
                state=view.state,
                generation=view.generation,
                open_until=now + view.open_remaining,
                reopenings=view.reopenings,
                probes_left=view.probes_left,
                half_open_since=now,
                override=view.override,
                override_reason=view.override_reason,
                override_until=(
                    None if view.override_remaining is None else now + view.override_remaining
                ),
                reason=view.reason,
            )
