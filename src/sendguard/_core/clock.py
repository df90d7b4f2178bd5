"""Clocks: every guard reads time through a `Clock`, so tests and drills can inject one."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of time. `monotonic` orders events in one process; `wall` is epoch seconds."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (only differences mean anything)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block this thread for `seconds` (a fake clock advances instead)."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend this task for `seconds` (a fake clock advances instead)."""
        ...


class SystemClock:
    """The real clock: `time.monotonic`, `time.time`, `time.sleep`, `asyncio.sleep`."""

    __slots__ = ()

    # The clock is read several times per guarded call: bound to the C functions
    # themselves, a read costs no Python frame.
    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when told to: `advance(seconds)`, or by `sleep`/`asleep`.

    Thread-safe. `sleep` and `asleep` return at once after advancing, so code under test
    that backs off or waits runs instantly and deterministically.
    """

    __slots__ = ("_lock", "_mono", "_wall")

    def __init__(self, start: float = 1_000.0, wall: float = 1_767_225_600.0) -> None:
        self._lock = threading.Lock()
        self._mono = float(start)
        self._wall = float(wall)

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Move both readings forward by `seconds` (which must not be negative)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards: advance({seconds!r})")
        with self._lock:
            self._mono += seconds
            self._wall += seconds

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    async def asleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._mono!r})"
