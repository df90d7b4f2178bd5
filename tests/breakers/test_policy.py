"""Bad breaker configuration fails when the policy is built, naming the field and the value."""

from __future__ import annotations

import pytest

from sendguard import ConfigError
from sendguard.breakers import Breaker, BreakerRegistry, Mode, Outcome, Window


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: Breaker(failure_rate=1.5), ["failure_rate", "1.5"]),
        (lambda: Breaker(failure_rate=0), ["failure_rate", "0"]),
        (lambda: Breaker(failure_rate=-0.1), ["failure_rate", "-0.1"]),
        (lambda: Breaker.consecutive(0), ["consecutive_failures", "0"]),
        (lambda: Breaker.consecutive(-3), ["consecutive_failures", "-3"]),
        (lambda: Breaker(slow_call_duration=-1.0), ["slow_call_duration", "-1.0"]),
        (lambda: Breaker.rate(0.5, slow=1.0, slow_rate=2.0), ["slow_call_rate", "2.0"]),
        (lambda: Breaker(min_calls=0), ["min_calls", "0"]),
        (lambda: Breaker(open_for=0), ["open_for", "0"]),
        (lambda: Breaker(open_for=-5), ["open_for", "-5"]),
        (lambda: Breaker(open_for=float("inf")), ["open_for", "inf"]),
        (lambda: Breaker(open_backoff=0.5), ["open_backoff", "0.5"]),
        (lambda: Breaker(open_for=60, max_open_for=10), ["max_open_for", "10"]),
        (lambda: Breaker(open_jitter=1.0), ["open_jitter", "1.0"]),
        (lambda: Breaker(half_open_calls=0), ["half_open_calls", "0"]),
        (lambda: Breaker(half_open_max_wait=0), ["half_open_max_wait", "0"]),
        (lambda: Window.count(0), ["count window", "0"]),
        (lambda: Window.time(0), ["time window", "0"]),
        (lambda: Window.count(2.5), ["count window", "2.5"]),  # type: ignore[arg-type]
        (lambda: Breaker(failure_on=(ValueError, int)), ["failure_on"]),  # type: ignore[arg-type]
        (lambda: Breaker(failure_rate=None), ["trip condition"]),
        (lambda: Breaker(slow_call_rate=0.5), ["slow_call_rate", "slow_call_duration"]),
        (lambda: Breaker(min_calls=True), ["min_calls", "True"]),
        (lambda: BreakerRegistry(max_breakers=0), ["max_breakers", "0"]),
        (lambda: BreakerRegistry(sync_interval=0), ["sync_interval", "0"]),
        (lambda: BreakerRegistry(store="mysql://x"), ["mysql://x"]),
    ],
)
def test_bad_config_is_rejected_at_construction(build, names):
    with pytest.raises(ConfigError) as caught:
        build()
    for name in names:
        assert name in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_rate_defaults_the_slow_share_to_the_failure_rate():
    policy = Breaker.rate(0.25, slow=0.5)
    assert policy.slow_call_rate == 0.25
    assert policy.slow_call_duration == 0.5
    assert Breaker(slow_call_duration=1.0).effective_slow_rate() == 1.0


def test_copy_validates_again():
    policy = Breaker.consecutive(3)
    assert policy.copy(open_for=5).open_for == 5
    with pytest.raises(ConfigError, match="open_for"):
        policy.copy(open_for=-1)


def test_exception_classification():
    policy = Breaker(failure_on=(OSError,), ignore_on=(PermissionError,))
    assert policy.classify_exception(OSError()) is Outcome.FAILURE
    assert policy.classify_exception(PermissionError()) is Outcome.IGNORED  # ignore wins
    assert policy.classify_exception(KeyError()) is Outcome.SUCCESS  # the dependency answered
    assert policy.classify_exception(KeyboardInterrupt()) is Outcome.IGNORED
    import asyncio

    assert policy.classify_exception(asyncio.CancelledError()) is Outcome.IGNORED


def test_open_duration_backs_off_to_the_cap_with_bounded_jitter():
    policy = Breaker(open_for=10, open_backoff=2, max_open_for=70, open_jitter=0.2)
    assert policy.open_duration(0, 0.5) == 10
    assert policy.open_duration(1, 0.5) == 20
    assert policy.open_duration(2, 0.5) == 40
    assert policy.open_duration(3, 0.5) == 70
    assert policy.open_duration(500, 0.5) == 70
    assert policy.open_duration(0, 0.0) == pytest.approx(8)
    assert policy.open_duration(0, 0.999999) == pytest.approx(12, rel=1e-4)
    assert policy.open_duration(3, 0.99) <= 70


def test_modes_are_enums():
    assert Breaker(mode=Mode.METRICS_ONLY).mode is Mode.METRICS_ONLY
    with pytest.raises(ConfigError, match="mode"):
        Breaker(mode="disabled")  # type: ignore[arg-type]


def test_min_calls_must_fit_in_a_count_window():
    with pytest.raises(ConfigError, match=r"min_calls=10 can never be reached in a window of 5"):
        Breaker(window=Window.count(5))
    assert Breaker.consecutive(3, window=Window.count(2)).min_calls == 10  # no rate: fine
