"""The polling-storm drill: `apoll` pollers meet the targets, fixed-interval polling does not."""

from __future__ import annotations

import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills.polling_storm import (
    CLIENT_TIMEOUT,
    DRILL,
    EVERY,
    MAX_INTERVAL,
    ROUTE_BACK,
    STORM_START,
    Route,
    StormRun,
    simulate_storm,
)

SCALE = 0.25  # 75 modals and 2 workers: the same incident, a smaller deployment


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


@pytest.fixture(scope="module")
def guarded() -> StormRun:
    return simulate_storm(guarded=True, scale=SCALE)


@pytest.fixture(scope="module")
def bare() -> StormRun:
    return simulate_storm(guarded=False, scale=SCALE)


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert result.passed


def test_fixed_interval_polling_misses_every_target(result: DrillResult) -> None:
    assert [t.passed for t in result.unguarded_targets] == [False] * 4


def test_figures_show_the_gap(result: DrillResult) -> None:
    storm = result.figure("storm_requests")
    assert storm.unguarded == 75 * (ROUTE_BACK - STORM_START) / EVERY  # a timer never slows
    assert storm.guarded is not None
    assert storm.guarded < storm.unguarded / 4
    recover = result.figure("recover_s")
    assert recover.unguarded is not None
    assert recover.guarded is not None
    assert recover.unguarded > 30 > 5 > recover.guarded
    assert result.headline_figure is recover


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)


def test_targets_hold_at_full_scale() -> None:
    full = DRILL.run(1.0)
    assert [t.description for t in full.targets if not t.passed] == []


def test_guarded_modals_keep_one_request_in_flight_and_back_off(guarded: StormRun) -> None:
    during = [t for t in guarded.sent if STORM_START + CLIENT_TIMEOUT <= t < ROUTE_BACK]
    # Once the first requests time out, 75 modals waiting 10 s per try plus growing
    # backoff send far fewer than one request each every EVERY seconds.
    assert len(during) < 75 * (ROUTE_BACK - STORM_START - CLIENT_TIMEOUT) / (EVERY + 10)
    assert len(during) > 0  # they never give up polling altogether


def test_guarded_modals_all_come_back_after_the_route_does(guarded: StormRun) -> None:
    assert len(guarded.fresh) == 75
    latest = max(guarded.fresh.values()) - ROUTE_BACK
    assert latest <= MAX_INTERVAL + CLIENT_TIMEOUT + EVERY


def test_the_unguarded_route_works_through_stale_requests(bare: StormRun) -> None:
    stale = [
        (a, s) for a, s, end in bare.route.served if s >= ROUTE_BACK and end - a > CLIENT_TIMEOUT
    ]
    assert len(stale) > 500  # work done for clients that left long ago
    assert bare.peak_queue() > 1000


def test_route_serves_first_come_first_served() -> None:
    route = Route(workers=2)
    assert route.admit(0.0) == pytest.approx(0.04)
    assert route.admit(0.0) == pytest.approx(0.04)
    assert route.admit(0.0) == pytest.approx(0.08)  # waits for a worker
    assert route.admit(STORM_START) == pytest.approx(STORM_START + 1.0)  # sick: 1 s each
    assert [round(s - a, 2) for a, s, _ in route.served] == [0.0, 0.0, 0.04, 0.0]
