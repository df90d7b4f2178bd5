"""Testing code that uses breakers: a fake clock, injected faults and testing mode.

These are ordinary test functions (pytest collects them as they are); run as a script,
the file calls them itself.
"""

import contextlib
import time

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry, State, Window
from sendguard.testing import FakeClock, Faults, set_testing


class Sender:
    """The code under test: sends through the primary provider, else the secondary."""

    def __init__(self, registry: BreakerRegistry, faults: Faults) -> None:
        self.primary = registry.provider("primary")
        self.deliver = faults.wrap(self._deliver)

    def _deliver(self, message_id: str) -> str:
        return f"{message_id} via primary"

    def send(self, message_id: str) -> str:
        try:
            return self.primary.call(self.deliver, message_id)
        except (BreakerOpen, ConnectionError):
            return f"{message_id} via secondary"


def test_fails_over_after_three_failures_and_comes_back() -> None:
    clock = FakeClock()
    faults = Faults(clock=clock)
    registry = BreakerRegistry(Breaker.consecutive(3, open_for=30, half_open_calls=1), clock=clock)
    sender = Sender(registry, faults)

    faults.fail()  # every call raises InjectedFault (a ConnectionError)
    assert [sender.send(f"m{n}") for n in range(4)] == [f"m{n} via secondary" for n in range(4)]
    assert faults.calls == 3  # the fourth never reached the provider
    assert sender.primary.state is State.OPEN

    faults.heal()
    clock.advance(33)  # 30 s open, +-10 % jitter: no real waiting, the time passes at once
    assert sender.send("m4") == "m4 via primary"  # the probe succeeds and closes it
    assert registry.info("provider:primary").state is State.CLOSED  # the shared view


def test_slow_calls_trip_without_real_sleeping() -> None:
    clock = FakeClock()
    faults = Faults(clock=clock)
    registry = BreakerRegistry(Breaker.rate(0.5, slow=2.0, window=Window.count(10)), clock=clock)
    sender = Sender(registry, faults)
    faults.slow(5.0)  # each call advances the fake clock by 5 s instead of sleeping
    started = time.monotonic()
    for n in range(10):
        sender.send(f"m{n}")
    assert sender.primary.state is State.OPEN
    assert sender.primary.stats.as_dict()["slow"] == 10
    assert time.monotonic() - started < 1.0


def open_time_with_jitter() -> float:
    """Trip a fresh breaker (open_for=30, jitter +-10 %) and return its retry_after."""
    clock = FakeClock()
    faults = Faults(clock=clock)
    faults.fail()
    breaker = BreakerRegistry(Breaker.consecutive(1), clock=clock).get("p")
    flaky = breaker(faults.wrap(lambda: None))
    with contextlib.suppress(ConnectionError):
        flaky()
    try:
        flaky()
    except BreakerOpen as refused:
        return refused.retry_after
    raise AssertionError("the breaker did not open")


def test_testing_mode_makes_jitter_repeatable() -> None:
    with set_testing():  # guards built inside draw jitter from a seeded generator
        first, second = open_time_with_jitter(), open_time_with_jitter()
    assert first == second
    assert 27 <= first <= 33  # open_for=30 with the default +-10 % jitter


if __name__ == "__main__":
    for test in (
        test_fails_over_after_three_failures_and_comes_back,
        test_slow_calls_trip_without_real_sleeping,
        test_testing_mode_makes_jitter_repeatable,
    ):
        test()
        print(f"{test.__name__}: passed")
