"""Policies are immutable values; bad ones fail at construction, naming field and value."""

from __future__ import annotations

import dataclasses
import itertools
import re

import pytest
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from sendguard import ConfigError
from sendguard.backoff import Jitter, JitterWait, RetryBudget, RetryPolicy
from sendguard.testing import FakeClock


def test_defaults_are_aws_standard_mode_shaped():
    policy = RetryPolicy()
    assert (policy.attempts, policy.base, policy.cap, policy.jitter) == (3, 0.5, 20.0, Jitter.FULL)
    assert policy.budget == RetryBudget(capacity=10.0, ratio=0.1, per="host", max_keys=1024)
    assert (policy.deadline, policy.attempt_timeout, policy.max_retry_after) == (None, None, 30.0)


def test_policies_are_frozen_and_copied_with_validation():
    policy = RetryPolicy(attempts=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.attempts = 2  # type: ignore[misc]
    assert policy.copy(deadline=10).deadline == 10
    assert policy.copy(deadline=10).attempts == 5
    with pytest.raises(ConfigError, match=r"RetryPolicy\.deadline"):
        policy.copy(deadline=-1)
    assert RetryBudget().copy(per="client").per == "client"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "RetryPolicy.attempts must be a whole number >= 1, got 0"),
        ({"attempts": 2.5}, "RetryPolicy.attempts"),
        ({"attempts": True}, "RetryPolicy.attempts"),
        ({"base": 0}, "RetryPolicy.base must be a finite number > 0, got 0"),
        ({"cap": float("nan")}, "RetryPolicy.cap"),
        ({"base": 3, "cap": 1}, "RetryPolicy.base=3 is above cap=1"),
        ({"jitter": "full"}, "RetryPolicy.jitter must be a Jitter, got 'full'"),
        ({"deadline": 0}, "RetryPolicy.deadline"),
        ({"attempt_timeout": float("inf")}, "RetryPolicy.attempt_timeout"),
        ({"max_retry_after": -1}, "RetryPolicy.max_retry_after"),
        ({"budget": 10}, "RetryPolicy.budget must be a RetryBudget or None, got 10"),
        ({"wait": 3}, "RetryPolicy.wait must be a tenacity wait strategy, got 3"),
        ({"stop": "never"}, "RetryPolicy.stop"),
    ],
)
def test_bad_policy_values(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity": 0.5}, "RetryBudget.capacity"),
        ({"ratio": -0.1}, "RetryBudget.ratio"),
        ({"ratio": 2}, "RetryBudget.ratio must be at most 1, got 2"),
        ({"per": "tenant"}, "RetryBudget.per must be 'client' or 'host', got 'tenant'"),
        ({"max_keys": 0}, "RetryBudget.max_keys"),
    ],
)
def test_bad_budget_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RetryBudget(**kwargs)


def test_a_policy_drives_a_plain_tenacity_retrying():
    clock = FakeClock()
    policy = RetryPolicy(attempts=4, base=1, cap=2, deadline=100)
    calls: list[float] = []

    def flaky() -> str:
        calls.append(clock.monotonic())
        raise ConnectionError("refused")

    retrying = Retrying(
        **policy.as_tenacity(),
        retry=retry_if_exception_type(ConnectionError),
        sleep=clock.sleep,
        reraise=True,
    )
    with pytest.raises(ConnectionError):
        retrying(flaky)
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(0 <= gap <= 2 for gap in gaps)


def test_as_tenacity_adds_the_users_stop():
    policy = RetryPolicy(attempts=10, stop=stop_after_attempt(2))
    retrying = Retrying(**policy.as_tenacity(), sleep=lambda s: None, reraise=True)
    count: list[int] = []

    def boom() -> None:
        count.append(1)
        raise ConnectionError

    with pytest.raises(ConnectionError):
        retrying(boom)
    assert len(count) == 2


def test_backoff_wait_is_the_users_wait_when_given():
    mine = wait_fixed(3)
    assert RetryPolicy(wait=mine).backoff_wait() is mine
    wait = RetryPolicy(base=1, cap=2, jitter=Jitter.EQUAL).backoff_wait()
    assert isinstance(wait, JitterWait)
    assert repr(wait) == "JitterWait(Jitter.EQUAL, base=1.0, cap=2.0)"
    assert RetryPolicy(stop=stop_after_delay(5)).stop is not None
