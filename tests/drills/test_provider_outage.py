"""The provider-outage drill: the guard meets its targets, the bare sender does not."""

from __future__ import annotations

import pytest

from sendguard.drills import DrillResult, get_drill, render
from sendguard.drills.provider_outage import (
    DRILL,
    POLICY,
    SEND_TIMEOUT,
    OutageRun,
    Timeline,
    simulate_outage,
)

SCALE = 0.25  # 500 messages over the same 100 s incident


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


@pytest.fixture(scope="module")
def guarded() -> OutageRun:
    return simulate_outage(guarded=True, scale=SCALE)


@pytest.fixture(scope="module")
def bare() -> OutageRun:
    return simulate_outage(guarded=False, scale=SCALE)


def test_is_registered_under_its_name() -> None:
    assert get_drill("provider-outage") is DRILL


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    missed = [t.description for t in result.targets if not t.passed]
    assert missed == []
    assert result.passed


def test_unguarded_run_misses_the_targets_the_breaker_is_for(result: DrillResult) -> None:
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    # Failover alone delivers everything and never leaves the primary; the breaker is
    # what keeps senders off the sick provider, and so keeps latency down.
    assert verdicts == {
        "delivered": True,
        "p95_ms": False,
        "max_s": False,
        "wasted": False,
        "detect_s": False,
        "recover_s": True,
    }


def test_figures_show_the_gap(result: DrillResult) -> None:
    p95 = result.figure("p95_ms")
    assert p95.unguarded is not None
    assert p95.guarded is not None
    assert p95.unguarded > 10 * p95.guarded
    wasted = result.figure("wasted")
    assert wasted.unguarded is not None
    assert wasted.guarded is not None
    assert wasted.unguarded > 5 * wasted.guarded
    assert result.figure("detect_s").unguarded is None
    assert result.figure("delivered").guarded == Timeline.at_scale(SCALE).messages


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)


@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_targets_hold_up_to_the_full_drill(scale: float) -> None:
    run = DRILL.run(scale)
    assert [t.description for t in run.targets if not t.passed] == []


def test_timeline_thins_traffic_but_keeps_the_incident() -> None:
    full, quarter = Timeline.at_scale(1.0), Timeline.at_scale(SCALE)
    assert (full.messages, quarter.messages) == (2000, 500)
    assert (quarter.outage_start, quarter.dead_from, quarter.recovery) == (20.0, 30.0, 60.0)
    assert quarter.arrival(499) == pytest.approx(99.8)
    assert [quarter.phase(t) for t in (19.9, 20.0, 30.0, 59.9, 60.0)] == [
        "healthy",
        "brownout",
        "dead",
        "dead",
        "healthy",
    ]


def test_breaker_trips_on_slow_calls_in_the_brownout_and_closes_after_recovery(
    guarded: OutageRun,
) -> None:
    timeline = guarded.timeline
    times = [t for t, _ in guarded.transitions]
    assert times == sorted(times)
    assert times[0] >= timeline.outage_start  # no false trip while healthy
    first, last = guarded.transitions[0][1], guarded.transitions[-1][1]
    assert (first.to_state, first.reason) == ("open", "slow_call_rate")
    assert times[0] < timeline.dead_from  # caught in the brownout, before the timeouts
    assert (last.to_state, last.reason) == ("closed", "probes_succeeded")
    assert guarded.transitions[-1][0] >= timeline.recovery


def test_open_breaker_sends_straight_to_the_secondary(guarded: OutageRun) -> None:
    timeline = guarded.timeline
    detect = guarded.time_to_detect()
    assert detect is not None
    opened = timeline.outage_start + detect
    # Once the queue from the first slow calls has drained (a second or two)...
    during = [d for d in guarded.deliveries if opened + 3 <= d.arrival < timeline.recovery]
    refused = [d for d in during if d.via == "secondary" and not d.failed_over]
    probes = [d for d in during if d.failed_over or d.via == "primary"]
    # ...only half-open probes still try the primary; the rest go to the secondary at once.
    assert len(refused) > 0.9 * len(during)
    assert all(d.delivered - d.arrival <= 0.2 for d in refused)
    reopenings = sum(e.reason == "probe_failed" for _, e in guarded.transitions)
    assert len(probes) <= POLICY.half_open_calls * reopenings


def test_probes_to_the_dead_primary_are_bounded(guarded: OutageRun) -> None:
    timeline = guarded.timeline
    dead_calls = [c for c in guarded.primary_calls if timeline.phase(c.start) == "dead"]
    assert all(not c.ok and c.end - c.start == pytest.approx(SEND_TIMEOUT) for c in dead_calls)
    reopenings = sum(e.reason == "probe_failed" for _, e in guarded.transitions)
    assert len(dead_calls) <= POLICY.half_open_calls * reopenings


def test_unguarded_sender_waits_out_every_timeout(bare: OutageRun) -> None:
    timeline = bare.timeline
    assert bare.transitions == ()
    dead_calls = [c for c in bare.primary_calls if timeline.phase(c.start) == "dead"]
    assert len(dead_calls) > 50
    assert all(not c.ok for c in dead_calls)
    failed_over = [d for d in bare.deliveries if d.via == "secondary"]
    assert all(d.failed_over for d in failed_over)
    assert len(failed_over) == len([c for c in bare.primary_calls if not c.ok])
    assert min(d.delivered - d.arrival for d in failed_over) >= SEND_TIMEOUT
