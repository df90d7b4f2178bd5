"""Telemetry: events for every retry and give-up; counters for attempts and time waited."""

import contextlib

from sendguard import Event
from sendguard.backoff import (
    BudgetExhausted,
    GaveUp,
    Retrier,
    RetryBudget,
    RetryPolicy,
    RetryScheduled,
)
from sendguard.testing import FakeClock


def log(event: Event) -> None:
    if isinstance(event, RetryScheduled):
        print(f"event: {event.client} retries after {event.reason} (attempt {event.attempt})")
    elif isinstance(event, BudgetExhausted):
        print(f"event: {event.client} budget empty, not retrying {event.reason}")
    elif isinstance(event, GaveUp):
        print(f"event: {event.client} gave up ({event.why}) after {event.attempts} attempts")


policy = RetryPolicy(attempts=3, base=1, cap=1, budget=RetryBudget(capacity=2))
retrier = Retrier(policy, on=TimeoutError, name="smtp", clock=FakeClock(), hooks=[log])


def send() -> None:
    raise TimeoutError("smtp timed out")


for _ in range(2):
    with contextlib.suppress(TimeoutError):  # the last error is raised when retrying stops
        retrier.call(send)
stats = retrier.stats.as_dict()
print("stats:", {k: stats[k] for k in ("calls", "attempts", "retries", "budget_exhausted")})
