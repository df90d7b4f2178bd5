"""An existing pybreaker breaker adopted into a registry: decorators, asyncio, concurrency."""

from __future__ import annotations

import asyncio
import threading

import pybreaker
import pytest

from sendguard.breakers import BreakerOpen, BreakerRegistry, State


class Down(Exception):
    pass


class Recorder(pybreaker.CircuitBreakerListener):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def failure(self, cb, exc):
        self.seen.append(f"failure:{type(exc).__name__}")

    def success(self, cb):
        self.seen.append("success")

    def state_change(self, cb, old_state, new_state):
        self.seen.append(f"{old_state.name if old_state else None}->{new_state.name}")


def test_adopted_pybreaker_trips_with_its_own_rules_and_refuses_with_retry_after():
    listener = Recorder()
    legacy = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, listeners=[listener])
    registry = BreakerRegistry()
    adopted = registry.adopt("provider:legacy-smtp", legacy)

    @registry.protect("provider:legacy-smtp")
    def send(fail: bool) -> str:
        if fail:
            raise Down
        return "sent"

    assert send(False) == "sent"
    for _ in range(2):
        with pytest.raises(Down):
            send(True)
    assert adopted.state is State.OPEN
    assert legacy.current_state == pybreaker.STATE_OPEN
    with pytest.raises(BreakerOpen) as refused:
        send(False)
    assert 55 < refused.value.retry_after <= 60
    assert refused.value.key == "provider:legacy-smtp"
    assert listener.seen == ["success", "failure:Down", "failure:Down", "closed->open"]


def test_adopted_pybreaker_counts_coroutine_failures():
    legacy = pybreaker.CircuitBreaker(fail_max=1)
    registry = BreakerRegistry()
    registry.adopt("api", legacy)

    @registry.protect("api")
    async def fetch() -> str:
        await asyncio.sleep(0)
        raise Down

    async def main() -> None:
        with pytest.raises(Down):
            await fetch()
        with pytest.raises(BreakerOpen):
            await fetch()

    asyncio.run(main())


def test_adopted_pybreaker_no_longer_serialises_calls():
    registry = BreakerRegistry()
    registry.adopt("shared", pybreaker.CircuitBreaker())
    inside = threading.Barrier(4, timeout=10)

    @registry.protect("shared")
    def work() -> int:
        inside.wait()  # with pybreaker's own call() this deadlocks: it holds its lock
        return 1

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(work())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1, 1, 1, 1]


def test_excluded_exceptions_still_count_as_success():
    legacy = pybreaker.CircuitBreaker(fail_max=1, exclude=[KeyError])
    adopted = BreakerRegistry().adopt("x", legacy)
    empty: dict[str, int] = {}
    for _ in range(3):
        with pytest.raises(KeyError):
            adopted.call(lambda: empty["k"])
    assert adopted.state is State.CLOSED
    adopted.record(failed=True)
    assert adopted.state is State.OPEN


def test_a_successful_probe_runs_exactly_once():
    # Regression: pybreaker's open state runs the call itself when its timeout has
    # passed; the adapter must decide instead, so the function runs once, unlocked.
    legacy = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=0.01)
    adopted = BreakerRegistry().adopt("x", legacy)
    with pytest.raises(Down):
        adopted.call(lambda: (_ for _ in ()).throw(Down()))
    opened_at = legacy._state_storage.opened_at
    assert opened_at is not None
    legacy._state_storage.opened_at = opened_at.replace(year=2000)  # the timeout has passed
    runs: list[int] = []

    def probe() -> str:
        runs.append(1)
        return "ok"

    assert adopted.call(probe) == "ok"
    assert runs == [1]
    assert adopted.state is State.CLOSED


def test_the_kill_switch_reaches_adopted_breakers_and_adoption_comes_first():
    from sendguard import ConfigError

    registry = BreakerRegistry()
    adopted = registry.adopt("provider:legacy", pybreaker.CircuitBreaker())
    registry.force_open("provider:legacy", "storm")
    assert adopted.state is State.OPEN
    registry.force_closed("provider:legacy", "over")
    assert adopted.state is State.CLOSED
    with pytest.raises(ConfigError, match="timed override"):
        registry.force_open("provider:legacy", "storm", for_=60)
    registry.get("provider:new")
    with pytest.raises(ConfigError, match="already in use"):
        registry.adopt("provider:new", pybreaker.CircuitBreaker())
