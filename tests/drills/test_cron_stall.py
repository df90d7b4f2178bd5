"""The cron-stall drill: monitoring on cron never alerts; heartbeats read from outside cron
report the stall within every + grace, and the failed run at once."""

from __future__ import annotations

import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills.cron_stall import CHECK_EVERY, DEATH, DRILL, JOBS, simulate_stall

SCALE = 0.25


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    assert verdicts == {
        "alert_s": False,
        "worst_over_s": False,
        "failing_s": False,
        "false_alarms": True,
    }


def test_each_job_is_reported_within_its_every_plus_grace() -> None:
    run = simulate_stall(guarded=True, scale=SCALE)
    for job in JOBS:
        found = run.stalled_at[job.name]
        assert found is not None
        assert found > DEATH
        assert found - run.last_finished[job.name] <= job.every + job.grace + CHECK_EVERY
    assert run.false_alarms == 0
    assert simulate_stall(guarded=False, scale=SCALE).first_alert is None


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)
    assert render(result).rstrip().endswith("PASS: 4 of 4 targets met")


def test_targets_hold_at_the_full_drill() -> None:
    run = DRILL.run(1.0)
    assert [t.description for t in run.targets if not t.passed] == []
