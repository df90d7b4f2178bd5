"""The jitter arithmetic and its tenacity wait strategies."""

from __future__ import annotations

import random
import statistics

import httpx
import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from sendguard import ConfigError
from sendguard.backoff import (
    Jitter,
    JitterWait,
    backoff_delay,
    wait_decorrelated_jitter,
    wait_equal_jitter,
    wait_full_jitter,
    wait_retry_after,
)
from sendguard.testing import FakeClock

schedules = st.tuples(
    st.floats(min_value=1e-3, max_value=100.0), st.floats(min_value=1e-3, max_value=3600.0)
).filter(lambda bc: bc[0] <= bc[1])


@given(
    jitter=st.sampled_from(Jitter),
    schedule=schedules,
    retry=st.integers(min_value=1, max_value=10_000),
    previous=st.floats(min_value=0.0, max_value=1e9),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_every_delay_is_within_zero_and_cap(jitter, schedule, retry, previous, draw):
    base, cap = schedule
    delay = backoff_delay(jitter, retry, previous, base, cap, draw)
    assert 0.0 <= delay <= cap


@given(schedule=schedules, retry=st.integers(min_value=1, max_value=60), draw=st.floats(0, 0.999))
def test_each_jitter_stays_in_its_band(schedule, retry, draw):
    base, cap = schedule
    ceiling = min(cap, base * 2 ** (retry - 1))
    assert backoff_delay(Jitter.NONE, retry, 0, base, cap, draw) == pytest.approx(ceiling)
    assert backoff_delay(Jitter.FULL, retry, 0, base, cap, draw) <= ceiling * (1 + 1e-9)
    equal = backoff_delay(Jitter.EQUAL, retry, 0, base, cap, draw)
    assert ceiling / 2 * (1 - 1e-9) <= equal <= ceiling * (1 + 1e-9)
    decorrelated = backoff_delay(Jitter.DECORRELATED, retry, ceiling, base, cap, draw)
    assert min(base, cap) <= decorrelated <= min(cap, max(base, 3 * ceiling)) * (1 + 1e-9)


def test_full_jitter_spreads_uniformly_over_the_window():
    rng = random.Random(1)
    delays = [backoff_delay(Jitter.FULL, 4, 0, 0.5, 20, rng.random()) for _ in range(4000)]
    assert statistics.mean(delays) == pytest.approx(2.0, rel=0.05)  # window [0, 4]
    assert min(delays) < 0.05
    assert max(delays) > 3.95


def test_decorrelated_grows_from_the_previous_delay_not_the_count():
    assert backoff_delay(Jitter.DECORRELATED, 1, 0.5, 0.5, 100, 0.999) == pytest.approx(1.5, 1e-2)
    assert backoff_delay(Jitter.DECORRELATED, 1, 10.0, 0.5, 100, 0.999) == pytest.approx(30, 1e-2)
    assert backoff_delay(Jitter.DECORRELATED, 9, 10.0, 0.5, 100, 0.0) == 0.5


def test_waits_are_tenacity_wait_strategies_that_compose():
    clock = FakeClock()
    slept: list[float] = []
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("refused")
        return "sent"

    def record(seconds: float) -> None:
        slept.append(seconds)
        clock.sleep(seconds)

    wait = wait_full_jitter(0.1, 1.0, rng=random.Random(3)) + wait_fixed(2)
    retrying = Retrying(
        wait=wait,
        stop=stop_after_attempt(5),
        retry=retry_if_exception_type(ConnectionError),
        sleep=record,
    )
    assert retrying(flaky) == "sent"
    assert len(slept) == 3
    assert all(2.0 <= s <= 3.0 for s in slept)
    assert isinstance(wait_full_jitter(), tenacity.wait.wait_base)


@pytest.mark.parametrize(
    ("factory", "jitter"),
    [
        (wait_full_jitter, Jitter.FULL),
        (wait_equal_jitter, Jitter.EQUAL),
        (wait_decorrelated_jitter, Jitter.DECORRELATED),
    ],
)
def test_named_waits_are_jitter_waits(factory, jitter):
    wait = factory(0.2, 3.0)
    assert isinstance(wait, JitterWait)
    assert (wait.jitter, wait.base, wait.cap) == (jitter, 0.2, 3.0)
    assert repr(wait) == f"{factory.__name__}(base=0.2, cap=3.0)"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"base": 0}, "wait_full_jitter.base"),
        ({"base": -1}, "wait_full_jitter.base"),
        ({"cap": float("inf")}, "wait_full_jitter.cap"),
        ({"base": 5, "cap": 1}, "wait_full_jitter.base=5"),
    ],
)
def test_bad_schedules_are_config_errors_naming_the_field(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        wait_full_jitter(**kwargs)


def _state(outcome: object, failed: bool = False) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(Retrying(), None, (), {})
    state.outcome = tenacity.Future.construct(1, outcome, failed)
    return state


def test_wait_retry_after_reads_responses_and_status_errors():
    wait = wait_retry_after(wait_fixed(0.5), max_wait=60)
    request = httpx.Request("GET", "https://api.example.com/v1/emails")
    busy = httpx.Response(429, headers={"Retry-After": "7"}, request=request)
    assert wait(_state(busy)) == 7.0
    error = httpx.HTTPStatusError("busy", request=request, response=busy)
    assert wait(_state(error, failed=True)) == 7.0
    limited = httpx.Response(429, headers={"RateLimit": '"default";r=0;t=12'}, request=request)
    assert wait(_state(limited)) == 12.0
    assert wait(_state(httpx.Response(503, headers={"Retry-After": "soon"}))) == 0.5
    assert wait(_state(httpx.Response(503, headers={"Retry-After": "9999"}))) == 60.0
    assert wait(_state(ValueError("no response"), failed=True)) == 0.5


def test_wait_retry_after_rejects_a_bad_maximum():
    with pytest.raises(ConfigError, match="max_wait"):
        wait_retry_after(max_wait=-1)
