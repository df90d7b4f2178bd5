"""The traffic-burst drill: the guard sheds the excess with 429 and keeps the rest fast."""

from __future__ import annotations

import asyncio

import pytest

from sendguard.drills import DrillResult, render, simulate
from sendguard.drills.traffic_burst import DRILL, BurstRun, Overloaded, Server, simulate_burst
from sendguard.testing import FakeClock

SCALE = 0.25  # every phase a quarter as long


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


@pytest.fixture(scope="module")
def guarded() -> BurstRun:
    return simulate_burst(guarded=True, scale=SCALE)


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert result.passed


def test_unguarded_run_misses_the_targets_the_guard_is_for(result: DrillResult) -> None:
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    assert verdicts == {
        "p95_vs_calm": False,
        "limited_429": False,
        "bare_refusals": False,
        "errors_5xx": False,
        "calm_refused": True,  # calm traffic is fine either way
    }


def test_figures_show_the_gap(result: DrillResult) -> None:
    ratio = result.figure("p95_vs_calm")
    assert ratio.unguarded is not None
    assert ratio.unguarded > 5
    errors = result.figure("errors_5xx")
    assert errors.unguarded is not None
    assert errors.unguarded > 100
    assert result.figure("backlog_peak").unguarded == 64  # the backlog filled up
    served = result.figure("burst_served_pct").guarded
    assert served is not None
    assert 10 < served < 50  # each client keeps its share; the excess is refused


def test_every_refusal_is_a_429_with_retry_after(guarded: BurstRun) -> None:
    refused = [s.answer for s in guarded.sent if s.answer.status >= 400]
    assert refused
    assert {a.status for a in refused} == {429}
    assert all(a.retry_after is not None and int(a.retry_after) >= 1 for a in refused)
    assert all(s.phase != "calm" for s in guarded.sent if s.answer.status >= 400)


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)


def test_full_scale_meets_its_targets() -> None:
    assert DRILL.run(1.0).passed


def test_server_shares_cores_queues_then_refuses() -> None:
    clock = FakeClock()
    server = Server(workers=2, cores=1, backlog=1)
    done: dict[str, float] = {}
    t0 = clock.monotonic()

    async def job(name: str) -> None:
        try:
            await server.run(0.1)
            done[name] = round(clock.monotonic() - t0, 3)
        except Overloaded:
            done[name] = -1.0

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for name in ("a", "b", "c", "d"):
                group.create_task(job(name))

    simulate(clock, main)
    # a runs alone (0.1 s); b shares the core with a (0.2 s); c waits for a's worker,
    # then shares with b (0.1 + 0.2); d finds the backlog full.
    assert done == {"a": 0.1, "b": 0.2, "c": 0.3, "d": -1.0}
    assert server.busy == 0
    assert server.peak_backlog == 1
