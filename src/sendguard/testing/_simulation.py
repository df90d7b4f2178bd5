"""Simulated time for asyncio code: an event loop that jumps its `FakeClock` to the next timer.

`simulate(clock, main)` runs a coroutine on a loop whose time is `clock`: whenever every
task waits, the clock jumps to the next due timer, so a run that spans minutes of
timeouts, backoffs and polls finishes in milliseconds and repeats exactly. The drills
run on it; so can tests of code that sleeps.

Inside a simulation, tasks must sleep with ``asyncio.sleep`` (each wakes at its own
time). `FakeClock.asleep` moves the one clock for every task at once; give guards a
`LoopClock` instead, which reads the fake clock and sleeps on the loop.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from sendguard._core.clock import FakeClock
from sendguard._core.errors import SendguardError

__all__ = ["LoopClock", "SimulationStalled", "simulate"]

T = TypeVar("T")


class SimulationStalled(SendguardError, RuntimeError):
    """Every task of a simulation waits and no timer is due: it would never finish."""


class LoopClock:
    """A `FakeClock`'s readings, with sleeps on the (simulated) event loop.

    Pass it as ``clock=`` to guards used by many tasks under `simulate`: each task's
    backoff then waits on the loop for its own wake-up time.
    """

    __slots__ = ("fake",)

    def __init__(self, fake: FakeClock) -> None:
        self.fake = fake

    def monotonic(self) -> float:
        return self.fake.monotonic()

    def wall(self) -> float:
        return self.fake.wall()

    def sleep(self, seconds: float) -> None:
        raise RuntimeError("under simulated time, sleep with `await clock.asleep(...)`")

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, instead of waiting for a timer, moves the fake clock to it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise SimulationStalled("every task waits and no timer is due")
        self._clock.advance(timeout)
        return []


class _SimulatedLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is a `FakeClock` that jumps to the next due timer."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(_JumpingSelector(clock))
        self._fake_clock = clock

    def time(self) -> float:
        return self._fake_clock.monotonic()


def simulate(clock: FakeClock, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on an event loop that keeps time by `clock`.

    ``asyncio.sleep``, ``asyncio.wait_for`` and every other timer run on simulated time:
    when all tasks wait, the clock jumps to the next timer. Pass the same clock to the
    guards under test. The coroutine must do no real I/O (nothing would wake it up).
    Raises `SimulationStalled` if every task waits on something no timer will deliver.
    It runs its own event loop, so call it from synchronous code.
    """
    with asyncio.Runner(loop_factory=lambda: _SimulatedLoop(clock)) as runner:
        return runner.run(main())
