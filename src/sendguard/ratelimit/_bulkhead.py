"""Bulkheads: a cap on concurrent calls per route or group, with a bounded wait.

`BulkheadGate` serves threads and coroutines alike: a call takes a slot at once if one
is free; otherwise it waits up to `max_wait` seconds in a first-come queue, and a slot
given back is handed straight to the next waiter (no barging). With `shared=True` and a
Redis store, slots are leases in a sorted set shared by every process, each expiring
after `lease` seconds so a dead process cannot hold one forever; if Redis is away the
gate falls back to its local cap.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass

from sendguard._core.errors import ConfigError

__all__ = ["Bulkhead", "BulkheadGate"]


@dataclass(frozen=True, slots=True)
class Bulkhead:
    """At most `max_concurrent` calls at once; others wait up to `max_wait` seconds."""

    max_concurrent: int
    max_wait: float = 0.0
    shared: bool = False
    """Share the cap across processes through the guard's Redis store."""
    lease: float = 30.0
    """Seconds a shared slot lasts if its holder never gives it back."""

    def __post_init__(self) -> None:
        n = self.max_concurrent
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"Bulkhead.max_concurrent must be a whole number >= 1, got {n!r}")
        if not isinstance(self.max_wait, int | float) or not 0 <= self.max_wait <= 300:
            raise ConfigError(
                f"Bulkhead.max_wait must be in [0, 300] seconds, got {self.max_wait!r}"
            )
        if not isinstance(self.lease, int | float) or not 0 < self.lease <= 3600:
            raise ConfigError(f"Bulkhead.lease must be in (0, 3600] seconds, got {self.lease!r}")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _Waiter:
    __slots__ = ("event", "future", "granted", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None
        self.event = None if loop else threading.Event()
        self.granted = False

    def wake(self) -> None:
        if self.future is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(_resolve, self.future)
        elif self.event is not None:
            self.event.set()


class BulkheadGate:
    """The running cap of one bulkhead in this process."""

    def __init__(self, name: str, policy: Bulkhead) -> None:
        self.name = name
        self.policy = policy
        self.capacity = policy.max_concurrent
        self._lock = threading.Lock()
        self._in_use = 0
        self._queue: deque[_Waiter] = deque()
        self.rejected = 0

    @property
    def in_flight(self) -> int:
        """Calls holding a slot now."""
        return self._in_use

    def _take_or_queue(self, waiter: _Waiter | None) -> bool:
        """Take a free slot (True), or queue `waiter` (False). Caller holds the lock."""
        if self._in_use < self.capacity and not self._queue:
            self._in_use += 1
            return True
        if waiter is not None:
            self._queue.append(waiter)
        return False

    def _give_up(self, waiter: _Waiter) -> bool:
        """A waiter timed out: leave the queue, unless it was granted meanwhile (True)."""
        with self._lock:
            if waiter.granted:
                return True
            self._queue.remove(waiter)
            self.rejected += 1
            return False

    def try_enter(self) -> object | None:
        """Take a free slot without waiting, or None (a shared gate always says None here:
        its slots are in Redis, so callers go through `enter`/`aenter`)."""
        with self._lock:
            if self._in_use < self.capacity and not self._queue:
                self._in_use += 1
                return True
        return None

    local: bool = True
    """True when slots are counted in this process only (`leave` needs no I/O)."""

    def enter(self, max_wait: float | None = None) -> object | None:
        """Take a slot, waiting up to `max_wait` (default: the policy's).

        Returns the slot (pass it to `leave`), or None if none came free in time.
        """
        with self._lock:
            if self._in_use < self.capacity and not self._queue:
                self._in_use += 1
                return True
            wait = self.policy.max_wait if max_wait is None else max_wait
            waiter = _Waiter(None) if wait > 0 else None
            if self._take_or_queue(waiter):
                return True
            if waiter is None:
                self.rejected += 1
                return None
        assert waiter.event is not None
        try:
            woken = waiter.event.wait(wait)
        except BaseException:
            if self._give_up(waiter):
                self.leave()
            raise
        if woken or self._give_up(waiter):
            return True
        return None

    async def aenter(self, max_wait: float | None = None) -> object | None:
        """`enter` for coroutines (waiting never blocks the event loop).

        A waiting task that is cancelled leaves the queue, or gives back the slot it was
        handed meanwhile, so cancellations never leak capacity.
        """
        with self._lock:
            if self._in_use < self.capacity and not self._queue:
                self._in_use += 1
                return True
            wait = self.policy.max_wait if max_wait is None else max_wait
            waiter = _Waiter(asyncio.get_running_loop()) if wait > 0 else None
            if self._take_or_queue(waiter):
                return True
            if waiter is None:
                self.rejected += 1
                return None
        assert waiter.future is not None
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), wait)
            return True
        except TimeoutError:
            return True if self._give_up(waiter) else None
        except BaseException:  # cancelled while waiting
            if self._give_up(waiter):
                self.leave()
            raise

    def leave(self, slot: object = True) -> None:
        """Give `slot` back: to the next waiter if there is one."""
        with self._lock:
            if self._queue:
                waiter = self._queue.popleft()
                waiter.granted = True  # the slot passes to it; _in_use stays the same
            else:
                self._in_use = max(0, self._in_use - 1)
                return
        waiter.wake()

    async def aleave(self, slot: object = True) -> None:
        """`leave` for coroutines (a shared gate gives its lease back without blocking)."""
        self.leave(slot)

    def retry_after(self) -> float:
        """A hint for refused callers: about one wait, at least a second."""
        return max(1.0, self.policy.max_wait)
