"""Tools for testing code that uses sendguard, and for sendguard's own tests and drills.

- `FakeClock`: time that moves only when told; pass it as ``clock=`` to any guard.
- `set_testing()`: guards built while it is on draw jitter from a seeded generator, so
  runs repeat exactly. Use it as a function or a context manager.
- `Faults`: a switchboard that makes a dependency fail, slow down or recover on cue.
- `simulate(clock, main)`: run asyncio code on simulated time (the clock jumps to the
  next timer whenever every task waits); `LoopClock` lets many tasks sleep on it.

The real-server fixtures live in `sendguard.testing.servers`.
"""

from __future__ import annotations

import functools
import inspect
import random
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from sendguard._core.clock import SYSTEM_CLOCK, FakeClock
from sendguard._core.clock import Clock as _Clock
from sendguard._core.config import is_testing
from sendguard._core.config import set_testing_flag as _set_testing_flag
from sendguard.testing._simulation import LoopClock, SimulationStalled, simulate

__all__ = [
    "FakeClock",
    "Faults",
    "InjectedFault",
    "LoopClock",
    "SimulationStalled",
    "is_testing",
    "set_testing",
    "simulate",
]

P = ParamSpec("P")
R = TypeVar("R")


class set_testing:
    """Turn testing mode on (or off). Also a context manager that restores the old setting."""

    def __init__(self, on: bool = True) -> None:
        self._previous = _set_testing_flag(on)

    def __enter__(self) -> set_testing:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        _set_testing_flag(self._previous)


class InjectedFault(ConnectionError):
    """The default error `Faults` raises."""


class Faults:
    """Make a dependency fail, slow down or recover on cue; counts what it did.

    ``faults.wrap(fn)`` returns a sync or async function (matching `fn`) that first waits
    `latency` seconds on the clock (a `FakeClock` advances instead of sleeping, so a slow
    dependency costs no real time), then raises `error` with probability `failure_rate`,
    else calls `fn`. `fail()`, `slow()` and `heal()` switch modes at any time.
    """

    def __init__(self, *, clock: _Clock = SYSTEM_CLOCK, seed: int = 0) -> None:
        self.clock = clock
        self.failure_rate = 0.0
        self.latency = 0.0
        self.error: Callable[[], BaseException] = lambda: InjectedFault("injected fault")
        self.calls = 0
        self.injected = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def fail(self, rate: float = 1.0, error: Callable[[], BaseException] | None = None) -> None:
        """Fail a share `rate` of calls (all by default) with `error()`."""
        if not 0 <= rate <= 1:
            raise ValueError(f"failure rate must be in [0, 1], got {rate!r}")
        self.failure_rate = rate
        if error is not None:
            self.error = error

    def slow(self, seconds: float) -> None:
        """Add `seconds` of latency to every call."""
        if seconds < 0:
            raise ValueError(f"latency cannot be negative, got {seconds!r}")
        self.latency = seconds

    def heal(self) -> None:
        """No more failures or latency."""
        self.failure_rate = 0.0
        self.latency = 0.0

    def _should_fail(self) -> bool:
        with self._lock:
            self.calls += 1
            hit = self.failure_rate > 0 and self._rng.random() < self.failure_rate
            if hit:
                self.injected += 1
            return hit

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        """`fn` with this switchboard's faults in front of it."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_faulty(*args: P.args, **kwargs: P.kwargs) -> Any:
                if self.latency:
                    await self.clock.asleep(self.latency)
                if self._should_fail():
                    raise self.error()
                return await fn(*args, **kwargs)

            return async_faulty  # type: ignore[return-value]

        @functools.wraps(fn)
        def faulty(*args: P.args, **kwargs: P.kwargs) -> R:
            if self.latency:
                self.clock.sleep(self.latency)
            if self._should_fail():
                raise self.error()
            return fn(*args, **kwargs)

        return faulty
