"""The analytics-storm drill: the guard keeps the archives up, the bare app does not."""

from __future__ import annotations

import asyncio

import pytest

from sendguard.drills import DrillResult, render, simulate
from sendguard.drills._asgi import call
from sendguard.drills.analytics_storm import (
    CALM,
    DRILL,
    ConnectionPool,
    PoolTimeout,
    StormRun,
    simulate_storm,
)
from sendguard.testing import FakeClock

SCALE = 0.25  # a quarter of the readers, over the same 80 s


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


@pytest.fixture(scope="module")
def guarded() -> StormRun:
    return simulate_storm(guarded=True, scale=SCALE)


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert result.passed


def test_unguarded_run_misses_every_target(result: DrillResult) -> None:
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    assert verdicts == {
        "archive_ok_pct": False,
        "p95_vs_calm": False,
        "analytics_503": False,
        "retry_after_pct": False,
        "errors_500": False,
    }


def test_figures_show_the_pool_starving_without_the_guard(result: DrillResult) -> None:
    ok = result.figure("archive_ok_pct")
    assert ok.unguarded is not None
    assert ok.unguarded < 60
    assert ok.guarded == 100
    wait = result.figure("pool_wait_p95_ms")
    assert wait.unguarded == pytest.approx(1000)  # archive requests time out in the queue
    assert wait.guarded is not None
    assert wait.guarded < 50
    calm = result.figure("calm_p95_ms")
    assert calm.unguarded == calm.guarded  # before the storm both runs are the same app


def test_analytics_is_shed_by_limit_and_breaker(result: DrillResult, guarded: StormRun) -> None:
    assert (result.figure("analytics_429").guarded or 0) > 100
    assert (result.figure("analytics_503").guarded or 0) > 100
    refusals = [r.answer for r in guarded.analytics() if r.answer.status in (429, 503)]
    assert refusals
    assert all(a.retry_after is not None and int(a.retry_after) >= 1 for a in refusals)
    assert all(r.start >= CALM for r in guarded.analytics())


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)


def test_full_scale_meets_its_targets() -> None:
    assert DRILL.run(1.0).passed


def test_pool_hands_connections_over_in_order_and_times_out() -> None:
    clock = FakeClock()
    pool = ConnectionPool(1, 1.0, clock)
    order: list[str] = []

    async def use(name: str, hold: float) -> None:
        try:
            async with pool.connection():
                order.append(name)
                await asyncio.sleep(hold)
        except PoolTimeout:
            order.append(f"{name} timed out")

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(use("first", 0.5))
            group.create_task(use("second", 0.1))
            group.create_task(use("third", 0.1))
            group.create_task(use("late", 0.0))
        assert pool.in_use == 0

    simulate(clock, main)
    # "late" queued behind the others and waited 0.7 s, within its 1 s timeout.
    assert order == ["first", "second", "third", "late"]
    pool = ConnectionPool(1, 1.0, clock)
    order.clear()

    async def starved() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(use("hog", 5.0))
            group.create_task(use("waiter", 0.0))

    simulate(clock, starved)
    assert order == ["hog", "waiter timed out"]
    assert [round(w, 3) for _, w in pool.waits] == [0.0, 1.0]


def test_call_turns_an_escaping_exception_into_a_500() -> None:
    async def broken(scope, receive, send) -> None:
        raise RuntimeError("boom")

    answer = asyncio.run(call(broken, "/x", client="192.0.2.1"))
    assert (answer.status, answer.retry_after, answer.refused) == (500, None, False)


def test_pool_forgets_a_cancelled_waiter() -> None:
    clock = FakeClock()
    pool = ConnectionPool(1, 10.0, clock)

    async def main() -> None:
        await pool.acquire()
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.1)  # simulated time: the waiter queues, no real waiting
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        pool.release()  # nobody waits any more: the connection goes back to the pool
        assert pool.in_use == 0
        await asyncio.wait_for(pool.acquire(), 0.01)
        assert pool.in_use == 1

    simulate(clock, main)
