"""The fat-jobs drill: unguarded, the fan-out fills Redis and sinks the scheduler; guarded, the
fat batch is refused at enqueue and the lean one goes through."""

from __future__ import annotations

import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills.fat_jobs import DRILL, SCHEDULER_MEMORY, FanOutRun, simulate_fan_out
from sendguard.jobs import Violation

SCALE = 0.25  # 75 batch jobs


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


@pytest.fixture(scope="module")
def guarded() -> FanOutRun:
    return simulate_fan_out(guarded=True, scale=SCALE)


def test_guarded_run_meets_every_target_and_the_unguarded_none(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert [t.passed for t in result.unguarded_targets] == [False] * len(result.targets)


def test_both_figures_for_both_runs(result: DrillResult) -> None:
    fat, written = result.figure("fat_jobs"), result.figure("written_mb")
    assert (fat.unguarded, fat.guarded) == (75, 0)
    assert written.unguarded is not None
    assert written.guarded is not None
    assert written.unguarded > 200 * written.guarded  # 75 x 256 KiB vs 75 x ids
    peak = result.figure("scheduler_peak_mb")
    assert peak.unguarded is not None
    assert peak.guarded is not None
    assert peak.unguarded > SCHEDULER_MEMORY / 1e6 > 10 * peak.guarded
    assert result.figure("scheduled").unguarded == 0  # out of memory: nothing gets through
    assert result.figure("scheduled").guarded == 75


def test_the_fat_batch_is_refused_with_the_clear_error(guarded: FanOutRun) -> None:
    error = guarded.rejection
    assert error is not None
    assert error.violation is Violation.TYPE
    assert str(error) == (
        "sendguard.drills.fat_jobs.send_batch on queue 'five_minutes': args[0] is "
        "sendguard.drills.fat_jobs.Email: pass its id"
    )
    assert (guarded.fat_jobs_written, guarded.jobs_written) == (0, 75)
    assert simulate_fan_out(guarded=False, scale=SCALE).rejection is None


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)


def test_targets_hold_at_the_full_drill() -> None:
    run = DRILL.run(1.0)
    assert [t.description for t in run.targets if not t.passed] == []
    assert run.figure("fat_jobs").unguarded == 300
