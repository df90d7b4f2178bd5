"""Retry budgets: retries never exceed what the budget allows, whatever the outcomes."""

from __future__ import annotations

import contextlib
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.backoff import BudgetExhausted, Budgets, Retrier, RetryBudget, RetryPolicy
from sendguard.testing import FakeClock


class Script:
    """A dependency that fails or succeeds in the order a list says (then succeeds)."""

    def __init__(self, outcomes: list[bool]) -> None:
        self.outcomes = list(outcomes)
        self.log: list[bool] = []

    def __call__(self) -> str:
        ok = self.outcomes.pop(0) if self.outcomes else True
        self.log.append(ok)
        if not ok:
            raise ConnectionError("down")
        return "ok"


@settings(max_examples=150, deadline=None)
@given(
    outcomes=st.lists(st.booleans(), max_size=300),
    capacity=st.integers(min_value=1, max_value=20),
    ratio=st.sampled_from([0.0, 0.05, 0.1, 0.5, 1.0]),
    attempts=st.integers(min_value=1, max_value=6),
    calls=st.integers(min_value=1, max_value=120),
)
def test_retries_never_exceed_the_budget(outcomes, capacity, ratio, attempts, calls):
    budget = RetryBudget(capacity=capacity, ratio=ratio)
    retrier = Retrier(
        RetryPolicy(attempts=attempts, base=0.01, cap=0.1, budget=budget),
        on=ConnectionError,
        clock=FakeClock(),
        hooks=[],
    )
    dependency = Script(outcomes)
    first_successes = successful_retries = 0
    for _ in range(calls):
        before = len(dependency.log)
        with contextlib.suppress(ConnectionError):
            retrier.call(dependency)
        made = dependency.log[before:]
        first_successes += made[0]
        successful_retries += len(made) > 1 and made[-1]
    retries = len(dependency.log) - calls
    assert retries == retrier.stats.retries
    # Retries that fail are paid from the bucket; it earns only from successes.
    failed_retries = retries - successful_retries
    earned = ratio * (first_successes + successful_retries)
    assert failed_retries <= capacity + earned + 1e-9
    assert retries <= capacity + earned + successful_retries + 1e-9


def test_total_outage_adds_at_most_the_capacity():
    retrier = Retrier(
        RetryPolicy(attempts=3, budget=RetryBudget(capacity=10)),
        on=ConnectionError,
        clock=FakeClock(),
        hooks=[],
    )
    dependency = Script([False] * 10_000)
    for _ in range(1000):
        with contextlib.suppress(ConnectionError):
            retrier.call(dependency)
    assert len(dependency.log) == 1000 + 10  # amplification 1.01
    assert retrier.stats.budget_exhausted == 1000 - 5


def test_successes_refill_the_bucket_up_to_capacity():
    bucket = Budgets(RetryBudget(capacity=2, ratio=0.5)).bucket("api.example.com")
    assert bucket.try_spend()
    assert bucket.try_spend()
    assert not bucket.try_spend()
    assert (bucket.spent, bucket.refused) == (2, 1)
    bucket.succeeded()
    assert bucket.tokens == 0.5
    bucket.succeeded(retried=True)
    assert bucket.tokens == 2.0  # 0.5 + 0.5 + the retry's token back, capped at 2
    bucket.succeeded(retried=True)
    assert bucket.tokens == 2.0
    assert repr(bucket) == "TokenBucket(tokens=2.00/2)"


def test_one_bucket_per_host_bounded_or_one_per_client():
    per_host = Budgets(RetryBudget(max_keys=2))
    a, b = per_host.bucket("a"), per_host.bucket("b")
    assert a is per_host.bucket("a")
    assert a is not b
    per_host.bucket("c")
    assert set(per_host.buckets()) == {"b", "c"}  # the oldest went first
    per_client = Budgets(RetryBudget(per="client"))
    assert per_client.bucket("a") is per_client.bucket("b")
    assert list(per_client.buckets()) == [""]
    assert "keys=1" in repr(per_client)
    assert Budgets().policy == RetryBudget()


def test_budgets_reject_a_non_policy():
    with pytest.raises(ConfigError, match="Budgets needs a RetryBudget, got 10"):
        Budgets(10)  # type: ignore[arg-type]


def test_a_shared_budget_is_spent_by_every_client_that_shares_it():
    shared = Budgets(RetryBudget(capacity=3, per="client"))
    events: list[object] = []
    one = Retrier(RetryPolicy(attempts=5), budgets=shared, clock=FakeClock(), hooks=[events.append])
    two = Retrier(RetryPolicy(attempts=5), budgets=shared, clock=FakeClock(), hooks=[])
    for retrier in (one, two):
        with contextlib.suppress(ConnectionError):
            retrier.call(Script([False] * 10))
    assert (one.stats.retries, two.stats.retries) == (3, 0)
    assert [type(e) for e in events if isinstance(e, BudgetExhausted)] == [BudgetExhausted]


def test_concurrent_spending_never_overdraws():
    bucket = Budgets(RetryBudget(capacity=100, ratio=0)).bucket("")
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        got = [bucket.try_spend() for _ in range(50)]
        with lock:
            granted.extend(got)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100
    assert bucket.tokens == 0
