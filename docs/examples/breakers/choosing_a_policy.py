"""Trip conditions: failure rate, consecutive failures, slow calls; count and time windows."""

import contextlib
from collections.abc import Callable

from sendguard.breakers import Breaker, BreakerRegistry, State, Window
from sendguard.testing import FakeClock, Faults

default = Breaker()
print(
    f"default: failure_rate={default.failure_rate} over a {default.window.kind} window "
    f"of {default.window.size:g} s, min_calls={default.min_calls}, open_for={default.open_for:g} s"
)


def calls_until_open(policy: Breaker, before_each: Callable[[Faults], None]) -> int:
    """Make calls, ten per (fake) second, until the breaker opens; return how many it took."""
    clock = FakeClock()
    faults = Faults(clock=clock)
    breaker = BreakerRegistry(policy, clock=clock).get("demo")
    work = breaker(faults.wrap(lambda: "ok"))
    for n in range(1, 1000):
        before_each(faults)
        with contextlib.suppress(ConnectionError):
            work()
        clock.advance(0.1)
        if breaker.state is State.OPEN:
            return n
    raise AssertionError("never opened")


def every_other_call_fails(faults: Faults) -> None:
    if faults.calls % 2:
        faults.fail()
    else:
        faults.heal()


def always_fails(faults: Faults) -> None:
    faults.fail()


def slow_url_check(faults: Faults) -> None:
    faults.slow(3.0)  # every call takes 3 s (of fake time) and still succeeds


# 50 % failures over the last 20 calls, judged once 20 calls are in.
rate_count = Breaker.rate(0.5, window=Window.count(20), min_calls=20)
print("rate over count(20):", calls_until_open(rate_count, every_other_call_fails))

# The same rate over the last 30 s (the default window), judged from 10 calls.
print("rate over time(30):", calls_until_open(Breaker.rate(0.5), every_other_call_fails))

# Five failures in a row, whatever the window holds.
print("consecutive(5):", calls_until_open(Breaker.consecutive(5), always_fails))

# Calls of 2 s or more count as slow, even when they succeed (incident #8). These run one
# at a time, so fewer than min_calls=10 of them fit in a 30 s window: count the last 10.
slow = Breaker.rate(0.5, slow=2.0, window=Window.count(10))
print("slow calls:", calls_until_open(slow, slow_url_check))
