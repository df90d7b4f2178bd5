"""The generic retrier: sync and async, filters, deadline, timeouts, testing mode, tenacity."""

from __future__ import annotations

import asyncio
import inspect
import random

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tenacity import stop_after_delay, wait_fixed

from sendguard import BreakerOpen, ConfigError
from sendguard.backoff import (
    TESTING_ATTEMPTS,
    GaveUp,
    Retrier,
    RetryPolicy,
    RetryScheduled,
    retry,
    transient_error,
)
from sendguard.drills import simulate
from sendguard.testing import FakeClock, set_testing


class Flaky:
    """Fails `failures` times with `error`, then returns "ok"; counts calls and their times."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError, clock=None):
        self.failures = failures
        self.error = error
        self.calls = 0
        self.clock = clock
        self.times: list[float] = []

    def __call__(self, *args: object) -> str:
        self.calls += 1
        if self.clock is not None:
            self.times.append(self.clock.monotonic())
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


def test_a_first_time_success_returns_at_once():
    retrier = Retrier(clock=FakeClock(), hooks=[])
    assert retrier.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert retrier.stats.as_dict() == {
        "calls": 1, "attempts": 1, "retries": 0, "gave_up": 0, "budget_exhausted": 0, "waited": 0.0,
    }  # fmt: skip


def test_retries_transient_errors_then_returns():
    clock = FakeClock()
    flaky = Flaky(2, clock=clock)
    events: list[object] = []
    retrier = Retrier(RetryPolicy(attempts=3, base=1, cap=4), clock=clock, hooks=[events.append])
    assert retrier.call(flaky) == "ok"
    assert flaky.calls == 3
    gaps = [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)]
    assert 0 <= gaps[0] <= 1
    assert 0 <= gaps[1] <= 2
    assert [(e.reason, e.attempt) for e in events if isinstance(e, RetryScheduled)] == [
        ("connection_error", 1),
        ("connection_error", 2),
    ]
    assert retrier.stats.waited == pytest.approx(sum(gaps))


def test_gives_up_after_the_attempts_with_the_last_error():
    events: list[object] = []
    flaky = Flaky(10)
    retrier = Retrier(RetryPolicy(attempts=4), clock=FakeClock(), hooks=[events.append])
    with pytest.raises(ConnectionError, match="failure 4"):
        retrier.call(flaky)
    assert flaky.calls == 4
    gave_up = [e for e in events if isinstance(e, GaveUp)]
    assert [(e.why, e.attempts) for e in gave_up] == [("attempts", 4)]


def test_other_errors_are_raised_at_once():
    flaky = Flaky(1, error=KeyError)
    with pytest.raises(KeyError):
        Retrier(clock=FakeClock(), hooks=[]).call(flaky)
    assert flaky.calls == 1


def test_a_breaker_refusal_is_never_retried():
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise BreakerOpen("open", retry_after=1, key="k", policy=None, reason="open")

    for on in (transient_error, Exception, (BreakerOpen,)):
        with pytest.raises(BreakerOpen):
            Retrier(on=on, clock=FakeClock(), hooks=[]).call(refused)
    assert len(calls) == 3


def test_on_accepts_types_tuples_and_predicates():
    clock = FakeClock()
    assert Retrier(on=KeyError, clock=clock, hooks=[]).call(Flaky(1, KeyError)) == "ok"
    assert Retrier(on=(KeyError, ValueError), clock=clock, hooks=[]).call(Flaky(1, ValueError))
    picky = Retrier(on=lambda e: "failure 1" in str(e), clock=clock, hooks=[])
    assert picky.call(Flaky(1)) == "ok"
    with pytest.raises(ConnectionError, match="failure 2"):
        picky.call(Flaky(2))
    with pytest.raises(ConfigError, match="on= must be exception types or a predicate, got 3"):
        Retrier(on=3)  # type: ignore[arg-type]


def test_transient_error_knows_httpx_and_status_errors():
    request = httpx.Request("GET", "https://api.example.com/")
    assert transient_error(httpx.ConnectError("refused", request=request))
    assert transient_error(httpx.ReadTimeout("slow", request=request))
    assert transient_error(TimeoutError())
    busy = httpx.Response(503, request=request)
    assert transient_error(httpx.HTTPStatusError("busy", request=request, response=busy))
    missing = httpx.Response(404, request=request)
    assert not transient_error(httpx.HTTPStatusError("no", request=request, response=missing))
    assert not transient_error(ValueError())


def test_retry_if_result_retries_results_and_honours_retry_after():
    clock = FakeClock()
    answers = iter(
        [httpx.Response(503, headers={"Retry-After": "5"}), httpx.Response(200, text="done")]
    )
    retrier = Retrier(retry_if_result=lambda r: r.status_code == 503, clock=clock, hooks=[])
    start = clock.monotonic()
    assert retrier.call(lambda: next(answers)).text == "done"
    assert 5.0 <= clock.monotonic() - start <= 5.5


def test_a_result_still_bad_when_retries_stop_is_returned():
    retrier = Retrier(RetryPolicy(attempts=2), retry_if_result=lambda r: r is None, hooks=[])
    with set_testing():
        assert retrier.call(lambda: None) is None
    assert retrier.stats.retries == 1


def test_retry_after_longer_than_trusted_stops_at_once():
    events: list[object] = []
    retrier = Retrier(
        RetryPolicy(max_retry_after=10),
        retry_if_result=lambda r: r.status_code == 429,
        clock=FakeClock(),
        hooks=[events.append],
    )
    answer = httpx.Response(429, headers={"Retry-After": "3600"})
    assert retrier.call(lambda: answer) is answer
    assert [e.why for e in events if isinstance(e, GaveUp)] == ["retry_after"]


def test_users_tenacity_wait_and_stop_pieces():
    clock = FakeClock()
    flaky = Flaky(100, clock=clock)
    policy = RetryPolicy(attempts=100, wait=wait_fixed(2), stop=stop_after_delay(7))
    with pytest.raises(ConnectionError):
        Retrier(policy, clock=clock, hooks=[]).call(flaky)
    assert [b - a for a, b in zip(flaky.times, flaky.times[1:], strict=False)] == [2, 2, 2, 2]


def test_deadline_stops_waits_that_would_end_past_it():
    clock = FakeClock()
    flaky = Flaky(100, clock=clock)
    policy = RetryPolicy(attempts=100, base=1, cap=1, deadline=10, budget=None)
    events: list[object] = []
    with pytest.raises(ConnectionError):
        Retrier(policy, clock=clock, hooks=[events.append]).call(flaky)
    assert flaky.times[-1] - flaky.times[0] < 10
    assert [e.why for e in events if isinstance(e, GaveUp)] == ["deadline"]


def test_testing_mode_waits_nothing_and_caps_attempts():
    clock = FakeClock()
    flaky = Flaky(100, clock=clock)
    retrier = Retrier(RetryPolicy(attempts=50, base=10, cap=100), clock=clock, hooks=[])
    with set_testing(), pytest.raises(ConnectionError):
        retrier.call(flaky)
    assert flaky.calls == TESTING_ATTEMPTS
    assert set(flaky.times) == {flaky.times[0]}  # no time passed


def test_decorator_keeps_names_signatures_and_coroutines():
    retrier = retry(RetryPolicy(attempts=2), on=ConnectionError, clock=FakeClock())

    @retrier
    def send(message_id: int, *, priority: bool = False) -> str:
        return f"{message_id}:{priority}"

    @retrier
    async def asend(message_id: int) -> str:
        return str(message_id)

    assert send.__name__ == "send"
    assert list(inspect.signature(send).parameters) == ["message_id", "priority"]
    assert inspect.signature(send).return_annotation == "str"
    assert send(3, priority=True) == "3:True"
    assert inspect.iscoroutinefunction(asend)
    assert asyncio.run(asend(4)) == "4"
    assert repr(retrier).startswith("Retrier('default', RetryPolicy(attempts=2")


def test_async_retries_and_gives_up_like_sync():
    clock = FakeClock()
    calls: list[float] = []

    @retry(RetryPolicy(attempts=3, base=1, cap=1), clock=clock)
    async def fetch() -> str:
        calls.append(clock.monotonic())
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "ok"

    assert asyncio.run(fetch()) == "ok"
    assert len(calls) == 3
    retrier = Retrier(RetryPolicy(attempts=2), clock=clock, hooks=[])
    failing = Flaky(10)

    async def always() -> str:
        return failing()

    with pytest.raises(ConnectionError, match="failure 2"):
        asyncio.run(retrier.acall(always))


def test_async_attempt_timeout_cuts_a_hung_attempt_and_retries():
    clock = FakeClock()
    durations = iter([100.0, 0.5])

    async def sometimes_hangs() -> str:
        await asyncio.sleep(next(durations))
        return "ok"

    retrier = Retrier(RetryPolicy(attempts=2, attempt_timeout=2, base=0.1, cap=0.1), clock=clock)
    events: list[object] = []
    retrier.engine.telemetry.hooks = (events.append,)
    assert simulate(clock, lambda: retrier.acall(sometimes_hangs)) == "ok"
    assert [e.reason for e in events if isinstance(e, RetryScheduled)] == ["attempt_timeout"]


def test_an_errors_own_timeout_is_not_mistaken_for_the_attempt_timeout():
    async def own_timeout() -> str:
        raise TimeoutError("the dependency's own")

    retrier = Retrier(RetryPolicy(attempts=1, attempt_timeout=5), clock=FakeClock(), hooks=[])
    with pytest.raises(TimeoutError, match="the dependency's own"):
        asyncio.run(retrier.acall(own_timeout))


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=40),
    deadline=st.floats(min_value=0.5, max_value=60.0),
    attempt_timeout=st.one_of(st.none(), st.floats(min_value=0.1, max_value=20.0)),
    base=st.floats(min_value=0.01, max_value=5.0),
    seed=st.integers(0, 1000),
)
def test_the_total_never_passes_the_deadline(durations, deadline, attempt_timeout, base, seed):
    clock = FakeClock()
    times = iter(durations)
    policy = RetryPolicy(
        attempts=1000, base=base, cap=max(base, 8.0), deadline=deadline,
        attempt_timeout=attempt_timeout, budget=None,
    )  # fmt: skip
    retrier = Retrier(policy, clock=clock, hooks=[], rng=random.Random(seed))

    async def slow_then_failing() -> str:
        await asyncio.sleep(next(times, 0.0))
        raise ConnectionError("still down")

    async def main() -> float:
        start = clock.monotonic()
        with pytest.raises((ConnectionError, TimeoutError)):  # the last attempt's failure
            await retrier.acall(slow_then_failing)
        return clock.monotonic() - start

    assert simulate(clock, main) <= deadline + 1e-9


def test_bad_retrier_configuration():
    with pytest.raises(ConfigError, match="needs a RetryPolicy, got 3"):
        Retrier(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="retry_if_result must be callable"):
        Retrier(retry_if_result=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name must be a non-empty string"):
        Retrier(name="")
    with pytest.raises(ConfigError, match="budgets must be a Budgets"):
        Retrier(budgets="x")  # type: ignore[arg-type]
