"""One behaviour suite for rate-limit backends, over memory and real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendguard.ratelimit import Limit, MemoryLimitBackend, RateLimiter, parse_rates
from sendguard.ratelimit.redis_backend import RedisLimitBackend
from sendguard.testing import FakeClock


@pytest.fixture(params=["memory", "redis"])
def make(request) -> Iterator[object]:
    """A factory of (limiter, clock) on the parametrised backend."""
    made: list[RateLimiter] = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    def factory() -> tuple[RateLimiter, FakeClock]:
        clock = FakeClock(start=0.0)
        backend = (
            MemoryLimitBackend(clock)
            if url is None
            else RedisLimitBackend(url, time_ms=lambda: round(clock.monotonic() * 1000))
        )
        limiter = RateLimiter(backend, clock=clock)
        made.append(limiter)
        return limiter, clock

    yield factory
    for limiter in made:
        limiter.close()


def limits(text: str, scope: str = "route:GET /x") -> list[Limit]:
    return [Limit(scope, r) for r in parse_rates(text)]


def test_admits_the_limit_then_refuses_with_advice(make):
    limiter, clock = make()
    rule = limits("3/second")
    answers = [limiter.check("k", rule).allowed for _ in range(5)]
    assert answers == [True, True, True, False, False]
    refused = limiter.check("k", rule)
    assert 0 < refused.retry_after <= 2.0
    assert refused.states[0].remaining == 0
    clock.advance(refused.retry_after * 0.9)
    assert not limiter.check("k", rule).allowed  # not yet...
    clock.advance(refused.retry_after * 0.1)
    assert limiter.check("k", rule).allowed  # ...and exactly when it said


def test_clients_windows_are_spread_so_they_are_not_admitted_in_lockstep(make):
    limiter, _ = make()
    rule = limits("1/second")
    clients = [f"client-{i}" for i in range(40)]
    for c in clients:
        limiter.check(c, rule)  # each spends its one request
    waits = sorted(limiter.check(c, rule).retry_after for c in clients)
    # with a window phase per client, the refused clients are told different times
    assert waits[-1] - waits[0] > 0.5
    assert len({round(w, 2) for w in waits}) > 20


def test_all_of_a_requests_limits_or_none(make):
    limiter, _ = make()
    rule = limits("2/second;3/minute")
    assert [limiter.check("k", rule).allowed for _ in range(3)] == [True, True, False]
    refused = limiter.check("k", rule)
    assert [s.allowed for s in refused.states] == [False, True]  # the minute limit had room
    assert refused.states[1].remaining == 1  # ...and was not charged for refused requests


def test_keys_and_scopes_are_independent(make):
    limiter, _ = make()
    assert limiter.check("a", limits("1/minute")).allowed
    assert not limiter.check("a", limits("1/minute")).allowed
    assert limiter.check("b", limits("1/minute")).allowed
    assert limiter.check("a", limits("1/minute", scope="route:GET /y")).allowed


def test_cost_is_spent_in_every_limit(make):
    limiter, _ = make()
    rule = limits("10/minute")
    assert limiter.check("k", rule, cost=7).allowed
    assert not limiter.check("k", rule, cost=4).allowed
    assert limiter.check("k", rule, cost=3).states[0].remaining == 0


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    amount=st.integers(1, 6),
    window=st.sampled_from([1, 10, 60]),
    gaps=st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=60),
    cost=st.integers(1, 3),
)
def test_no_window_ever_admits_more_than_its_limit(make, amount, window, gaps, cost):
    cost = min(cost, amount)
    limiter, clock = make()
    rule = [Limit("route:GET /p", parse_rates(f"{amount}/{window} seconds")[0])]
    admitted: dict[int, int] = {}
    key = f"k{amount}-{window}-{cost}-{len(gaps)}"
    phase = limiter._digest(key)[1]  # this client's windows start `phase` of a window late
    for gap in gaps:
        clock.advance(gap * window / 4)
        decision = limiter.check(key, rule, cost)
        if decision.allowed:
            idx = int((clock.monotonic() - phase * window) // window)
            admitted[idx] = admitted.get(idx, 0) + cost
        # the interpolated count after this request never passes the limit
        assert decision.states[0].remaining >= 0
    assert all(count <= amount for count in admitted.values()), admitted


@given(
    steps=st.lists(
        st.tuples(st.floats(0, 3), st.integers(1, 4)),  # (seconds to advance, cost)
        min_size=1,
        max_size=60,
    ),
    phase=st.floats(0, 0.999),
)
def test_the_one_pass_admission_agrees_with_hit_and_state_of(steps, phase):
    from sendguard.ratelimit._window import state_of

    rates = parse_rates("5/second;12/10seconds")
    clock = FakeClock(start=1000.0)
    one_pass = MemoryLimitBackend(clock)
    general = MemoryLimitBackend(clock)
    keys = ["a", "b"]
    for advance, cost in steps:
        clock.advance(advance)
        states = one_pass.admit(keys, rates, cost, phase)
        allowed, seen = general.hit(keys, rates, cost, phase)
        expected = tuple(state_of(r, c, cost, allowed) for r, c in zip(rates, seen, strict=True))
        if states is None:  # refused, nothing counted: the general path says the same
            assert not allowed
            assert one_pass.hit(keys, rates, cost, phase)[0] is False
        else:
            assert allowed
            for got, want in zip(states, expected, strict=True):
                assert got[:3] == want[:3]  # rate, allowed, remaining: exactly
                assert got.reset == pytest.approx(want.reset)
                assert got.retry_after == want.retry_after == 0.0
