"""CircuitBreaker driven through its public ways in: call, decorator, guard(), registry."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sendguard import BreakerOpen, Event
from sendguard.breakers import (
    Breaker,
    BreakerRegistry,
    BreakerTransition,
    Mode,
    Outcome,
    State,
    Window,
)
from sendguard.testing import FakeClock, Faults


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def registry(policy: Breaker, **kw) -> tuple[BreakerRegistry, FakeClock, list[Event]]:
    clock = FakeClock()
    events: list[Event] = []
    return BreakerRegistry(policy, clock=clock, hooks=[events.append], **kw), clock, events


def trip(cb, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            cb.call(boom)


def test_rejection_carries_retry_after_key_and_policy():
    policy = Breaker.consecutive(2, open_for=30, open_jitter=0)
    reg, clock, events = registry(policy)
    cb = reg.provider("smtp-a")
    trip(cb, 2)
    clock.advance(12)
    with pytest.raises(BreakerOpen) as caught:
        cb.call(lambda: "never runs")
    assert caught.value.retry_after == pytest.approx(18)
    assert caught.value.key == "provider:smtp-a"
    assert caught.value.policy is policy
    assert caught.value.reason == "open"
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["BreakerTransition", "BreakerRejected"]
    assert events[0] == BreakerTransition(
        breaker="provider:smtp-a",
        from_state="closed",
        to_state="open",
        reason="consecutive_failures",
    )


def test_sync_and_async_decorators_keep_names_and_count_coroutine_failures():
    reg, _, _ = registry(Breaker.consecutive(3))
    cb = reg.route("GET /x")

    @cb
    def plain(x: int) -> int:
        return x * 2

    @cb
    async def failing(x: int) -> int:
        await asyncio.sleep(0)
        raise Boom

    assert plain(21) == 42
    assert plain.__name__ == "plain"
    assert failing.__name__ == "failing"
    assert asyncio.iscoroutinefunction(failing)

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(Boom):
                await failing(1)
        with pytest.raises(BreakerOpen):
            await failing(1)

    asyncio.run(main())
    assert cb.state is State.OPEN
    assert cb.stats.as_dict() == {
        "success": 1,
        "failure": 3,
        "ignored": 0,
        "slow": 0,
        "rejected": 1,
    }


def test_results_are_classified_and_ignored_outcomes_do_not_dilute_the_window():
    def by_status(status: object) -> Outcome:
        assert isinstance(status, int)
        if status >= 500:
            return Outcome.FAILURE
        return Outcome.IGNORED if status == 429 else Outcome.SUCCESS

    policy = Breaker(
        failure_rate=0.5, min_calls=4, window=Window.count(4), classify_result=by_status
    )
    reg, _, _ = registry(policy)
    cb = reg.provider("api")
    for status in (200, 503, 429, 429, 429, 200, 502):
        cb.call(lambda s=status: s)
    # window holds 200, 503, 200, 502 (the 429s were ignored): 2 of 4 failed -> open
    assert cb.state is State.OPEN


def test_guard_context_manager_sync_and_async():
    policy = Breaker.consecutive(
        2, classify_result=lambda r: Outcome.FAILURE if r == "5xx" else Outcome.SUCCESS
    )
    reg, _, _ = registry(policy)
    cb = reg.provider("http")
    with cb.guard() as call:
        call.result("5xx")

    async def main() -> None:
        async with cb.guard() as call:
            call.outcome(Outcome.FAILURE)

    asyncio.run(main())
    assert cb.state is State.OPEN
    with pytest.raises(BreakerOpen), cb.guard():
        pytest.fail("the body must not run")


def test_fallback_answers_refused_calls():
    reg, _, _ = registry(Breaker.consecutive(1))

    @reg.protect("provider:primary", fallback=lambda msg: f"secondary:{msg}")
    def send(msg: str) -> str:
        raise Boom

    @reg.protect("provider:primary", fallback=lambda msg: f"async-secondary:{msg}")
    async def asend(msg: str) -> str:
        return f"primary:{msg}"

    with pytest.raises(Boom):
        send("a")
    assert send("b") == "secondary:b"
    assert asyncio.run(asend("c")) == "async-secondary:c"


def test_protect_with_a_key_function_gives_one_breaker_per_tenant():
    reg, _, _ = registry(Breaker.consecutive(1))

    @reg.protect(lambda tenant, fail: f"tenant:{tenant}")
    def work(tenant: str, fail: bool) -> str:
        if fail:
            raise Boom
        return tenant

    with pytest.raises(Boom):
        work("acme", True)
    with pytest.raises(BreakerOpen):
        work("acme", False)
    assert work("globex", False) == "globex"


def test_slow_successes_trip_the_breaker():
    reg, clock, _ = registry(Breaker.rate(0.5, slow=2.0, min_calls=4, window=Window.count(4)))
    cb = reg.route("GET /v1/emails/{id}/analytics")
    faults = Faults(clock=clock)
    analytics = cb(faults.wrap(lambda: "report"))
    analytics()
    analytics()
    faults.slow(3.0)
    analytics()
    assert cb.state is State.CLOSED
    analytics()  # 2 of 4 slow
    assert cb.state is State.OPEN
    assert cb.stats.as_dict()["slow"] == 2


def test_no_lock_is_held_while_the_guarded_call_runs():
    reg, _, _ = registry(Breaker())
    cb = reg.get("shared")
    inside = threading.Barrier(8, timeout=10)

    def work() -> int:
        inside.wait()  # all eight must be inside at once, or this times out
        return 1

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cb.call(work))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1] * 8


def test_coroutines_run_concurrently_through_one_breaker():
    reg, _, _ = registry(Breaker())
    cb = reg.get("shared")

    async def main() -> list[int]:
        release = asyncio.Event()
        inside = 0

        @cb
        async def work(i: int) -> int:
            nonlocal inside
            inside += 1
            if inside == 20:
                release.set()
            await release.wait()
            return i

        return await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(20))), 10)

    assert asyncio.run(main()) == list(range(20))


def test_half_open_admits_a_bounded_number_of_probes_and_fails_the_rest_fast():
    reg, clock, _ = registry(Breaker.consecutive(1, open_for=5, open_jitter=0, half_open_calls=2))
    cb = reg.provider("p")
    trip(cb, 1)
    clock.advance(5)
    t1 = cb.admit(clock.monotonic())
    t2 = cb.admit(clock.monotonic())
    with pytest.raises(BreakerOpen) as caught:
        cb.admit(clock.monotonic())
    assert caught.value.reason == "half_open"
    cb.finish(t1, Outcome.SUCCESS, 0.01)
    cb.finish(t2, Outcome.SUCCESS, 0.01)
    assert cb.state is State.CLOSED


def test_metrics_only_never_refuses_but_reports_the_trip():
    reg, _, events = registry(Breaker.consecutive(2, mode=Mode.METRICS_ONLY))
    cb = reg.get("dry-run")
    trip(cb, 5)
    assert cb.call(lambda: "ran") == "ran"
    assert cb.state is State.METRICS_ONLY
    assert any(isinstance(e, BreakerTransition) and e.to_state == "open" for e in events)


def test_disabled_passes_everything_and_records_nothing():
    reg, _, events = registry(Breaker.consecutive(1, mode=Mode.DISABLED))
    cb = reg.get("off")
    trip(cb, 5)
    assert cb.state is State.DISABLED
    assert events == []


def test_forced_states_win_and_lapse():
    reg, clock, _ = registry(Breaker.consecutive(1))
    cb = reg.route("GET /v1/emails/{id}/analytics")
    reg.force_open(cb.name, "analytics storm", for_=60)
    with pytest.raises(BreakerOpen, match="analytics storm") as caught:
        cb.call(lambda: 1)
    assert caught.value.retry_after == pytest.approx(60)
    clock.advance(61)
    assert cb.call(lambda: 2) == 2
    reg.force_closed(cb.name, "known flaky, keep serving")
    trip(cb, 3)
    assert cb.state is State.FORCED_CLOSED
    reg.reset(cb.name)
    assert cb.state is State.CLOSED


def test_operator_calls_need_a_reason_and_a_positive_duration():
    from sendguard import ConfigError

    reg, _, _ = registry(Breaker())
    with pytest.raises(ConfigError, match="reason"):
        reg.force_open("x", "  ")
    with pytest.raises(ConfigError, match="-5"):
        reg.force_open("x", "why", for_=-5)


def test_registry_is_bounded_and_policies_apply_by_name_then_scope():
    special = Breaker.consecutive(7)
    tenants = Breaker.consecutive(9)
    reg, _, _ = registry(
        Breaker(), max_breakers=3, policies={"route:GET /a": special, "tenant:*": tenants}
    )
    assert reg.route("GET /a").policy is special
    assert reg.tenant("acme").policy is tenants
    assert reg.provider("x").policy is reg.policy
    for i in range(10):
        reg.tenant(f"t{i}")
    assert len(reg.breakers()) == 3
    assert {b.name for b in reg.breakers()} == {"tenant:t7", "tenant:t8", "tenant:t9"}


def test_a_failing_hook_never_breaks_the_call(caplog):
    def bad_hook(event: Event) -> None:
        raise RuntimeError("hook bug")

    reg = BreakerRegistry(Breaker.consecutive(1), clock=FakeClock(), hooks=[bad_hook])
    cb = reg.get("x")
    with pytest.raises(Boom):
        cb.call(boom)
    with pytest.raises(BreakerOpen):
        cb.call(lambda: 1)
    assert "hook bug" in caplog.text


def test_a_refresh_due_as_the_open_time_ends_still_admits_the_probe():
    # Regression: the refresh read the store with a later clock reading than the call's,
    # and an open time of zero left looked like "still open" to the earlier reading.
    clock = FakeClock()
    reg = BreakerRegistry(
        Breaker.consecutive(1, open_for=5, open_jitter=0), clock=clock, sync_interval=5
    )
    cb = reg.provider("p")
    trip(cb, 1)

    class Stepping(FakeClock):
        def monotonic(self) -> float:  # every reading a little later, like a real clock
            clock.advance(1e-4)
            return clock.monotonic()

    cb._now = Stepping().monotonic
    clock.advance(5.0)
    assert cb.call(lambda: "probe ran") == "probe ran"


def test_decorated_breakers_are_never_evicted():
    reg, _, _ = registry(Breaker.consecutive(1), max_breakers=2)

    @reg.protect("provider:pinned")
    def send() -> None:
        raise Boom

    pinned = reg.get("provider:pinned")
    for i in range(10):
        reg.tenant(f"t{i}")
    assert reg.get("provider:pinned") is pinned  # one object per name, still reporting
    with pytest.raises(Boom):
        send()
    assert pinned.state is State.OPEN


def test_successes_before_an_idle_spell_do_not_count_as_recent():
    # 20 successes, five idle minutes, then failures: the old successes have left the
    # 30-second window, so the rate trips after min_calls failures, not after 20 more.
    reg, clock, _ = registry(Breaker(failure_rate=0.5, min_calls=10), sync_interval=0.5)
    cb = reg.get("idle")
    for _ in range(20):
        cb.call(lambda: None)
    clock.advance(300)
    failures = 0
    while cb.state is State.CLOSED:
        with pytest.raises(Boom):
            cb.call(boom)
        failures += 1
    assert failures == 10
