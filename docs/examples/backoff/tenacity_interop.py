"""sendguard and tenacity compose both ways: jitter waits in tenacity, tenacity pieces here."""

import random

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from sendguard.backoff import Retrier, RetryPolicy, wait_decorrelated_jitter, wait_retry_after
from sendguard.testing import FakeClock

clock = FakeClock()
failures = {"left": 3}


def flaky() -> str:
    if failures["left"]:
        failures["left"] -= 1
        raise ConnectionError("connection reset")
    return "ok"


# 1. sendguard's waits in a plain tenacity Retrying, added to tenacity's own.
slept: list[float] = []


def sleep(seconds: float) -> None:
    slept.append(seconds)
    clock.sleep(seconds)


retrying = Retrying(
    wait=wait_retry_after(wait_decorrelated_jitter(0.1, 5, rng=random.Random(1)) + wait_fixed(1)),
    stop=stop_after_attempt(5),
    retry=retry_if_exception_type(ConnectionError),
    sleep=sleep,
)
print("tenacity with sendguard waits:", retrying(flaky), [round(s, 2) for s in slept])

# 2. tenacity's pieces in a sendguard policy: a fixed 2 s wait, and stop after 5 s.
failures["left"] = 10
policy = RetryPolicy(attempts=10, wait=wait_fixed(2), stop=stop_after_delay(5))
retrier = Retrier(policy, on=ConnectionError, clock=clock)
started = clock.monotonic()
try:
    retrier.call(flaky)
except ConnectionError:
    print(f"gave up after {retrier.stats.attempts} attempts, {clock.monotonic() - started:.0f} s")

# 3. A sendguard policy handed to tenacity as it is.
failures["left"] = 1
plain = Retrying(**RetryPolicy(attempts=2, base=0.01, cap=0.01).as_tenacity(), sleep=clock.sleep)
print("tenacity with a sendguard policy:", plain(flaky))
