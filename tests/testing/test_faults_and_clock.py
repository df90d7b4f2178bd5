"""Testing helpers: the fake clock and the fault switchboard."""

from __future__ import annotations

import asyncio

import pytest

from sendguard.testing import FakeClock, Faults, InjectedFault, is_testing, set_testing


def test_fake_clock_moves_only_when_told():
    clock = FakeClock(start=10.0)
    assert clock.monotonic() == 10.0
    clock.sleep(2.5)
    asyncio.run(clock.asleep(0.5))
    assert clock.monotonic() == 13.0
    assert clock.wall() - FakeClock().wall() == pytest.approx(3.0)
    with pytest.raises(ValueError, match=r"-1"):
        clock.advance(-1)


def test_faults_fail_slow_and_heal_on_cue():
    clock = FakeClock()
    faults = Faults(clock=clock, seed=3)
    call = faults.wrap(lambda x: x + 1)
    assert call(1) == 2
    faults.slow(2.0)
    assert call(1) == 2
    assert clock.monotonic() == pytest.approx(1002.0)
    faults.fail(0.5)
    outcomes = []
    for _ in range(200):
        try:
            call(0)
            outcomes.append(True)
        except InjectedFault:
            outcomes.append(False)
    assert 60 < outcomes.count(False) < 140
    assert faults.injected == outcomes.count(False)
    faults.heal()
    assert call(5) == 6
    assert faults.calls == 203


def test_faults_wrap_coroutines():
    clock = FakeClock()
    faults = Faults(clock=clock)

    async def fetch() -> str:
        return "ok"

    wrapped = faults.wrap(fetch)
    faults.slow(1.0)
    assert asyncio.run(wrapped()) == "ok"
    faults.fail(error=lambda: TimeoutError("hung"))
    with pytest.raises(TimeoutError, match="hung"):
        asyncio.run(wrapped())
    assert clock.monotonic() == pytest.approx(1002.0)


def test_set_testing_is_a_function_and_a_context_manager():
    assert not is_testing()
    with set_testing():
        assert is_testing()
        with set_testing(False):
            assert not is_testing()
        assert is_testing()
    assert not is_testing()


def test_testing_mode_makes_jitter_repeat():
    from sendguard.breakers import Breaker, BreakerRegistry

    def opened_for() -> float:
        clock = FakeClock()
        cb = BreakerRegistry(Breaker.consecutive(1, open_jitter=0.5), clock=clock).get("x")
        with pytest.raises(ZeroDivisionError):
            cb.call(lambda: 1 / 0)
        return cb._machine.open_until - clock.monotonic()

    with set_testing():
        assert opened_for() == opened_for()


def test_simulated_time_lets_each_task_sleep_on_its_own_schedule():
    from sendguard.testing import LoopClock, SimulationStalled, simulate

    clock = FakeClock(start=0.0)
    shared = LoopClock(clock)

    async def main() -> list[tuple[str, float]]:
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await shared.asleep(seconds)
            woke.append((name, clock.monotonic()))

        await asyncio.gather(sleeper("slow", 600), sleeper("fast", 5), sleeper("mid", 60))
        return woke

    # an hour-scale schedule, run instantly, each task on its own time
    assert simulate(clock, main) == [("fast", 5.0), ("mid", 60.0), ("slow", 600.0)]

    async def stuck() -> None:
        await asyncio.Event().wait()  # nothing will ever set it

    with pytest.raises(SimulationStalled):
        simulate(clock, stuck)
