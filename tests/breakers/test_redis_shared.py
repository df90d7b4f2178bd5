"""Breakers sharing real Redis across processes, and surviving Redis going away."""

from __future__ import annotations

import itertools
import multiprocessing
import time

import pytest

from sendguard import StoreRecovered, StoreUnavailableEvent
from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry, State

from ._workers import race_for_probe, watch_for_rejection

ctx = multiprocessing.get_context("spawn")
WORKERS = 3


def _watchers(url: str, name: str, sync_interval: float):
    ready, stop, out = ctx.Barrier(WORKERS + 1), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=watch_for_rejection, args=(url, name, sync_interval, ready, stop, out))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    ready.wait(timeout=60)
    return procs, stop, out


def _collect(procs, stop, out) -> list[tuple[float | None, str]]:
    seen = [out.get(timeout=30) for _ in procs]
    stop.set()
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    out.close()
    return seen


def test_a_trip_in_one_process_is_seen_by_all_within_the_sync_interval(redis_url):
    sync_interval = 0.25
    procs, stop, out = _watchers(redis_url, "provider:primary", sync_interval)
    registry = BreakerRegistry(Breaker.consecutive(3, open_for=30), store=redis_url)
    breaker = registry.get("provider:primary")
    for _ in range(3):
        with pytest.raises(ConnectionError):
            breaker.call(lambda: (_ for _ in ()).throw(ConnectionError("dead")))
    tripped_at = time.time()
    assert breaker.state is State.OPEN
    seen = _collect(procs, stop, out)
    assert [reason for _, reason in seen] == ["open"] * WORKERS
    delays = [at - tripped_at for at, _ in seen if at is not None]
    assert len(delays) == WORKERS
    # documented staleness: one sync interval (plus scheduling slack on a loaded machine)
    assert max(delays) < sync_interval + 0.5, delays


def test_a_forced_open_is_seen_by_every_process_within_one_second(redis_url):
    procs, stop, out = _watchers(redis_url, "route:GET /v1/emails/{id}/analytics", 0.5)
    registry = BreakerRegistry(store=redis_url)
    registry.force_open("route:GET /v1/emails/{id}/analytics", "analytics storm", for_=600)
    forced_at = time.time()
    seen = _collect(procs, stop, out)
    assert [reason for _, reason in seen] == ["forced_open"] * WORKERS
    assert max(at - forced_at for at, _ in seen if at is not None) < 1.0
    info = registry.info("route:GET /v1/emails/{id}/analytics")
    assert (info.state, info.override_reason) == (State.FORCED_OPEN, "analytics storm")


def test_half_open_probe_permits_are_honoured_across_processes(redis_url):
    racers = 6
    ready, out = ctx.Barrier(racers + 1), ctx.Queue()
    procs = [
        ctx.Process(target=race_for_probe, args=(redis_url, "provider:p", ready, out))
        for _ in range(racers)
    ]
    for p in procs:
        p.start()
    policy = Breaker.consecutive(1, open_for=0.3, half_open_calls=2)
    breaker = BreakerRegistry(policy, store=redis_url).get("provider:p")
    with pytest.raises(OSError, match="down"):
        breaker.call(lambda: (_ for _ in ()).throw(OSError("down")))
    assert breaker.state is State.OPEN
    ready.wait(timeout=60)
    results = sorted(out.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    out.close()
    assert results == ["denied"] * (racers - 2) + ["probe"] * 2


def test_redis_going_away_degrades_to_local_state_and_comes_back(restartable_redis):
    from sendguard.testing import FakeClock

    clock = FakeClock()
    events: list[object] = []
    registry = BreakerRegistry(
        Breaker.consecutive(2, open_for=60),
        store=restartable_redis.url,
        clock=clock,
        hooks=[events.append],
        sync_interval=0.5,
    )
    breaker = registry.get("provider:smtp")
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.shared

    restartable_redis.stop(cleanup=False)
    clock.advance(1)  # a refresh is due: it meets the dead store
    started = time.monotonic()
    assert breaker.call(lambda: "still serving") == "still serving"
    assert time.monotonic() - started < 0.5
    assert not breaker.shared
    assert any(isinstance(e, StoreUnavailableEvent) for e in events)

    # local state keeps protecting: failures still trip the breaker
    for _ in range(2):
        with pytest.raises(OSError, match="down"):
            breaker.call(lambda: (_ for _ in ()).throw(OSError("smtp down")))
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: "refused")

    restartable_redis.start()
    clock.advance(40)  # past the store backoff: the next refresh probes Redis again
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: "refused")
    clock.advance(1)
    breaker.refresh()
    assert breaker.shared
    assert any(isinstance(e, StoreRecovered) for e in events)


def test_a_hung_redis_costs_one_socket_timeout_then_is_skipped(restartable_redis):
    from sendguard.testing import FakeClock

    clock = FakeClock()
    events: list[object] = []
    registry = BreakerRegistry(
        Breaker(),
        store=restartable_redis.url,
        clock=clock,
        hooks=[events.append],
        sync_interval=0.5,
    )
    breaker = registry.get("route:GET /archive/{slug}")
    breaker.call(lambda: None)
    restartable_redis.pause()
    try:
        timings = []
        for _ in range(20):
            clock.advance(0.6)  # every call is due a refresh
            started = time.monotonic()
            breaker.call(lambda: None)
            timings.append(time.monotonic() - started)
        # A call meeting the hung store waits one socket timeout (0.1 s) at most; the gate
        # then skips Redis and re-probes with doubling backoff (0.5, 1, 2, 4, 8 s of the
        # 12 s simulated here), so only a handful of calls ever wait.
        probes = [i for i, t in enumerate(timings) if t > 0.05]
        assert 2 <= len(probes) <= 6, timings
        assert max(timings) < 0.3, timings
        gaps = [b - a for a, b in itertools.pairwise(probes)]
        assert gaps == sorted(gaps), gaps  # the waits between probes grow
        assert sum(isinstance(e, StoreUnavailableEvent) for e in events) == len(probes)
    finally:
        restartable_redis.resume()


def test_operator_controls_fail_loudly_when_the_store_is_away():
    from sendguard import StoreUnavailable
    from sendguard.testing.servers import free_port

    registry = BreakerRegistry(store=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable):
        registry.force_open("route:GET /x", "storm", for_=60)
    with pytest.raises(StoreUnavailable):
        registry.reset("route:GET /x")
    # ...while calls themselves keep being served on local state
    assert registry.get("route:GET /x").call(lambda: "served") == "served"


def test_a_dry_run_breaker_never_publishes_its_trips(redis_url):
    from sendguard.breakers import Mode

    dry = BreakerRegistry(Breaker.consecutive(1, mode=Mode.METRICS_ONLY), store=redis_url)
    enforcing = BreakerRegistry(Breaker.consecutive(1), store=redis_url, sync_interval=0.01)
    with pytest.raises(OSError, match="down"):
        dry.get("provider:p").call(lambda: (_ for _ in ()).throw(OSError("down")))
    assert dry.get("provider:p")._machine.state is State.OPEN  # it would have refused...
    assert enforcing.info("provider:p").state is State.CLOSED  # ...but told nobody
    assert enforcing.get("provider:p").call(lambda: "served") == "served"
