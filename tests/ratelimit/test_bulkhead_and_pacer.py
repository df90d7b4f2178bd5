"""Bulkheads (threads, coroutines, Redis leases) and the outbound pacer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sendguard import RateLimited
from sendguard._core.telemetry import Telemetry
from sendguard.ratelimit import Bulkhead, BulkheadGate, Pacer
from sendguard.testing import FakeClock


def test_a_gate_caps_threads_and_hands_freed_slots_to_waiters_in_order():
    gate = BulkheadGate("r", Bulkhead(2, max_wait=10))
    first, second = gate.enter(), gate.enter()
    assert first and second
    assert gate.enter(max_wait=0) is None
    assert gate.rejected == 1
    got: list[str] = []
    started = threading.Barrier(3, timeout=10)

    def wait(name: str) -> None:
        started.wait()
        slot = gate.enter()
        got.append(name if slot else f"{name}-refused")

    waiters = [threading.Thread(target=wait, args=(n,)) for n in ("a", "b")]
    for t in waiters:
        t.start()
    started.wait()
    while len(gate._queue) < 2:  # both are queued (bounded: they wait up to 10 s)
        threading.Event().wait(0.001)
    gate.leave(first)
    gate.leave(second)
    for t in waiters:
        t.join()
    assert sorted(got) == ["a", "b"]
    assert gate.in_flight == 2  # handed over, never freed in between


def test_waiting_is_bounded():
    gate = BulkheadGate("r", Bulkhead(1, max_wait=0.05))
    assert gate.enter()
    assert gate.enter() is None  # waited 50 ms, then refused
    gate.leave()
    assert gate.in_flight == 0


def test_coroutines_wait_without_blocking_the_loop():
    gate = BulkheadGate("r", Bulkhead(1, max_wait=5))

    async def main() -> list[str]:
        order: list[str] = []
        slot = await gate.aenter()
        assert slot

        async def later() -> None:
            got = await gate.aenter()
            order.append("waiter" if got else "refused")
            gate.leave(got)

        task = asyncio.create_task(later())
        await asyncio.sleep(0)  # the loop runs: the waiter queues, it does not block
        order.append("holder")
        gate.leave(slot)
        await asyncio.wait_for(task, 5)
        assert await gate.aenter(max_wait=0)
        return order

    assert asyncio.run(main()) == ["holder", "waiter"]


def test_a_timed_out_coroutine_leaves_the_queue():
    gate = BulkheadGate("r", Bulkhead(1, max_wait=0.02))

    async def main() -> None:
        held = await gate.aenter()
        assert await gate.aenter() is None
        gate.leave(held)
        assert gate.in_flight == 0
        assert not gate._queue

    asyncio.run(main())


def test_shared_bulkheads_count_across_gates_and_leases_expire(redis_url, redis_client):
    from sendguard.ratelimit.redis_bulkhead import SharedBulkheadGate

    clock = FakeClock(start=0.0, wall=1_000_000.0)
    policy = Bulkhead(2, shared=True, lease=10.0)
    one = SharedBulkheadGate("GET /export", policy, redis_url, Telemetry([]), clock=clock)
    two = SharedBulkheadGate("GET /export", policy, redis_url, Telemetry([]), clock=clock)
    try:
        a, b = one.enter(), two.enter()
        assert isinstance(a, str) and isinstance(b, str)
        assert two.enter(max_wait=0) is None  # the cap is shared: two slots in all
        one.leave(a)
        c = two.enter()
        assert c is not None
        assert redis_client.zcard(one.key) == 2
        # `two` dies holding both slots: nobody renews them, and the leases free them
        two.close()
        clock.advance(9.0)
        assert one.enter(max_wait=0) is None
        clock.advance(1.5)
        assert isinstance(one.enter(max_wait=0), str)
    finally:
        one.close()
        two.close()


def test_shared_bulkhead_leases_held_by_a_live_process_are_renewed(redis_url, redis_client):
    from sendguard.ratelimit.redis_bulkhead import SharedBulkheadGate

    clock = FakeClock(start=0.0, wall=2_000_000.0)
    policy = Bulkhead(1, shared=True, lease=10.0)
    holder = SharedBulkheadGate("POST /import", policy, redis_url, Telemetry([]), clock=clock)
    other = SharedBulkheadGate("POST /import", policy, redis_url, Telemetry([]), clock=clock)
    try:
        slot = holder.enter()
        assert isinstance(slot, str)
        assert holder._renewer is not None and holder._renewer.daemon
        for _ in range(3):  # a call three leases long, renewed as it runs
            clock.advance(8.0)
            assert holder.renew() == 1
            assert other.enter(max_wait=0) is None
        assert redis_client.zscore(holder.key, slot) == pytest.approx(2_000_034_000)
        holder.leave(slot)
        assert holder.renew() == 0  # nothing held, nothing sent
        assert isinstance(other.enter(max_wait=0), str)
    finally:
        holder.close()
        other.close()
    assert holder._renewer is not None and not holder._renewer.is_alive()


def test_shared_bulkhead_falls_back_to_a_local_cap_without_redis():
    from sendguard.ratelimit.redis_bulkhead import SharedBulkheadGate
    from sendguard.testing.servers import free_port

    events: list[object] = []
    gate = SharedBulkheadGate(
        "GET /x",
        Bulkhead(1, shared=True),
        f"redis://127.0.0.1:{free_port()}/0",
        Telemetry([events.append]),
    )
    slot = gate.enter()
    assert slot is True  # a local slot
    assert gate.enter() is None
    gate.leave(slot)
    assert [type(e).__name__ for e in events] == ["StoreUnavailableEvent"]


def test_pacer_spaces_sends_evenly_and_gives_up_past_max_wait():
    clock = FakeClock(start=0.0)
    pacer = Pacer("2/second", max_wait=3.0, clock=clock)
    sent_at = []
    for _ in range(6):
        pacer.pace("example.com")
        sent_at.append(clock.monotonic())
    assert sent_at == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])  # the full rate, spaced
    assert pacer.pace("other.org") == 0.0  # keys are paced apart
    slow = Pacer("1/hour", max_wait=3.0, clock=clock)
    slow.pace("x")
    with pytest.raises(RateLimited, match="max_wait=3"):
        slow.pace("x")


def test_pacer_burst_and_async():
    clock = FakeClock(start=0.0)
    pacer = Pacer("1/second", burst=2, clock=clock)

    async def main() -> list[float]:
        return [await pacer.apace("d") for _ in range(4)]

    waits = asyncio.run(main())
    assert waits[:2] == [0.0, 0.0]  # a burst of two
    assert clock.monotonic() == pytest.approx(2.0)  # then one a second


def test_pacer_shares_its_pace_through_redis(redis_url):
    clock = FakeClock(start=0.0)
    one = Pacer("2/second", store=redis_url, clock=clock)
    two = Pacer("2/second", store=redis_url, clock=clock)
    assert one._redis is not None
    assert two._redis is not None
    one._redis._time_ms = two._redis._time_ms = lambda: round(clock.monotonic() * 1000)
    assert one.pace("gmail.com") == 0.0
    assert two.pace("gmail.com") == pytest.approx(0.5)  # the other worker's send counted
    assert one.pace("yahoo.com") == 0.0


def test_a_send_costing_more_than_the_burst_goes_alone():
    clock = FakeClock(start=0.0)
    pacer = Pacer("1/second", burst=1, clock=clock, max_wait=10)
    assert pacer.pace("d", cost=3) == 0.0  # goes at once, and books three intervals
    assert pacer.pace("d") == pytest.approx(3.0)


def test_a_pacer_store_must_be_redis():
    from sendguard import ConfigError

    with pytest.raises(ConfigError, match="memcached"):
        Pacer("1/second", store="memcached://localhost")


def test_a_cancelled_bulkhead_waiter_gives_its_slot_back():
    gate = BulkheadGate("r", Bulkhead(1, max_wait=5))

    async def main() -> None:
        held = await gate.aenter()
        waiter = asyncio.create_task(gate.aenter())
        await asyncio.sleep(0)
        assert len(gate._queue) == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        gate.leave(held)
        assert gate.in_flight == 0  # nothing leaked
        assert await gate.aenter(max_wait=0)

    asyncio.run(main())
