"""One behaviour suite for the breaker storage contract, over memory and real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from sendguard.breakers import MemoryBreakerStore, State
from sendguard.breakers._store import BreakerStore
from sendguard.breakers.redis_store import RedisBreakerStore
from sendguard.testing import FakeClock


@pytest.fixture(params=["memory", "redis"])
def env(request) -> Iterator[tuple[BreakerStore, FakeClock]]:
    clock = FakeClock()
    if request.param == "memory":
        yield MemoryBreakerStore(clock), clock
        return
    url = request.getfixturevalue("redis_url")
    store = RedisBreakerStore(url, time_ms=lambda: round(clock.monotonic() * 1000))
    yield store, clock
    store.close()


def test_a_new_breaker_reads_closed(env):
    store, _ = env
    view = store.read("svc")
    assert (view.state, view.generation, view.override) == (State.CLOSED, 0, None)


def test_trip_is_a_compare_and_set_on_the_generation(env):
    store, _ = env
    stale = store.trip("svc", 7, 10.0, 0, "failure_rate")
    assert stale.state is State.CLOSED  # generation 7 was never current: nothing happened
    opened = store.trip("svc", 0, 10.0, 0, "failure_rate")
    assert (opened.state, opened.generation, opened.reason) == (State.OPEN, 1, "failure_rate")
    assert opened.open_remaining == pytest.approx(10.0)
    again = store.trip("svc", 0, 99.0, 0, "late")
    assert again.generation == 1
    assert again.reason == "failure_rate"


def test_probes_are_bounded_and_close_after_enough_successes(env):
    store, clock = env
    store.trip("svc", 0, 5.0, 0, "failure_rate")
    granted, view = store.acquire_probe("svc", 2, 30.0, 10.0)
    assert not granted
    assert view.state is State.OPEN
    assert view.open_remaining == pytest.approx(5.0)
    clock.advance(5.0)
    grants = [store.acquire_probe("svc", 2, 30.0, 10.0)[0] for _ in range(4)]
    assert grants == [True, True, False, False]
    view = store.read("svc")
    assert view.state is State.HALF_OPEN
    gen = view.generation
    assert store.report_probe("svc", gen, True, 2, 10.0).state is State.HALF_OPEN
    closed = store.report_probe("svc", gen, True, 2, 10.0)
    assert closed.state is State.CLOSED
    assert closed.reopenings == 0
    assert closed.reason == "probes_succeeded"


def test_a_failed_probe_reopens_with_backoff_count(env):
    store, clock = env
    store.trip("svc", 0, 5.0, 0, "failure_rate")
    clock.advance(5.0)
    assert store.acquire_probe("svc", 1, 30.0, 10.0)[0]
    gen = store.read("svc").generation
    view = store.report_probe("svc", gen, False, 1, 20.0)
    assert (view.state, view.reopenings, view.reason) == (State.OPEN, 1, "probe_failed")
    assert view.open_remaining == pytest.approx(20.0)
    # A late report for the old generation changes nothing.
    assert store.report_probe("svc", gen, True, 1, 20.0).state is State.OPEN


def test_released_probe_permits_come_back(env):
    store, clock = env
    store.trip("svc", 0, 1.0, 0, "x")
    clock.advance(1.0)
    assert store.acquire_probe("svc", 1, 30.0, 10.0)[0]
    assert not store.acquire_probe("svc", 1, 30.0, 10.0)[0]
    store.release_probe("svc", store.read("svc").generation)
    assert store.acquire_probe("svc", 1, 30.0, 10.0)[0]


def test_half_open_too_long_reopens(env):
    store, clock = env
    store.trip("svc", 0, 1.0, 0, "x")
    clock.advance(1.0)
    assert store.acquire_probe("svc", 1, 30.0, 10.0)[0]
    clock.advance(31.0)
    granted, view = store.acquire_probe("svc", 1, 30.0, 10.0)
    assert not granted
    assert (view.state, view.reason, view.reopenings) == (State.OPEN, "half_open_timeout", 1)


def test_overrides_expire_and_reset_clears_everything(env):
    store, clock = env
    view = store.set_override("svc", State.FORCED_OPEN, "analytics storm", 60.0)
    assert (view.override, view.override_reason) == (State.FORCED_OPEN, "analytics storm")
    assert view.override_remaining == pytest.approx(60.0)
    clock.advance(59.0)
    assert store.read("svc").override is State.FORCED_OPEN
    clock.advance(1.5)
    assert store.read("svc").override is None
    store.set_override("svc", State.FORCED_CLOSED, "hotfix", None)
    view = store.read("svc")
    assert view.override is State.FORCED_CLOSED
    assert view.override_remaining is None
    store.trip("svc", view.generation, 5.0, 0, "x")
    reset = store.reset("svc")
    assert (reset.state, reset.override, reset.reason) == (State.CLOSED, None, "reset")
    assert reset.generation > view.generation


def test_names_lists_what_the_store_has_seen(env):
    store, _ = env
    store.read("route:GET /a")
    store.read("provider:smtp")
    assert {"route:GET /a", "provider:smtp"} <= set(store.names())


def test_redis_keys_share_one_slot_per_breaker_and_carry_the_prefix(redis_url):
    store = RedisBreakerStore(redis_url)
    store.trip("route:GET /v1/emails/{id}/analytics", 0, 5.0, 0, "x")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = sorted(str(k) for k in client.keys("*"))
    client.close()
    store.close()
    assert all(k.startswith("sendguard:{") for k in keys)
    state_keys = [k for k in keys if k.endswith(":state")]
    assert len(state_keys) == 1
    # user text with braces and spaces never reaches the key: it is digested
    assert " " not in state_keys[0]
    assert state_keys[0].count("{") == 1


def test_redis_errors_become_store_unavailable():
    from sendguard import StoreUnavailable
    from sendguard.testing.servers import free_port

    store = RedisBreakerStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.05)
    with pytest.raises(StoreUnavailable, match="redis breaker store"):
        store.read("svc")
    store.close()


def test_redis_name_index_is_bounded(redis_url, monkeypatch):
    from sendguard.breakers import redis_store as _redis

    monkeypatch.setattr(_redis, "INDEX_SIZE", 3)
    clock = FakeClock()
    store = RedisBreakerStore(redis_url, time_ms=lambda: round(clock.monotonic() * 1000))
    for i in range(6):
        clock.advance(1)
        store.read(f"tenant:t{i}")
    assert store.names() == ["tenant:t3", "tenant:t4", "tenant:t5"]
    assert len(store._indexed) <= 3
    store.close()


def test_a_quiet_half_open_breaker_waits_for_its_probes(env):
    store, clock = env
    store.trip("svc", 0, 1.0, 0, "x")
    clock.advance(1.0)
    assert store.acquire_probe("svc", 2, 30.0, 10.0)[0]
    store.report_probe("svc", store.read("svc").generation, True, 2, 10.0)
    clock.advance(120.0)  # a quiet route: the second probe comes much later
    granted, view = store.acquire_probe("svc", 2, 30.0, 10.0)
    assert granted
    assert view.state is State.HALF_OPEN
