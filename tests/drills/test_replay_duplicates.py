"""The replay-duplicates drill: the blind replay sends duplicates; the ledger sends none and
lists every message whose outcome is unknown."""

from __future__ import annotations

import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills.replay_duplicates import DRILL, ReplayRun, simulate_replay

SCALE = 0.2  # 2,000 messages


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run(SCALE)


@pytest.fixture(scope="module")
def guarded() -> ReplayRun:
    return simulate_replay(guarded=True, scale=SCALE)


def test_guarded_run_meets_every_target_and_the_unguarded_none(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert [t.passed for t in result.unguarded_targets] == [False] * len(result.targets)


def test_the_blind_replay_delivers_duplicates(result: DrillResult) -> None:
    duplicates = result.figure("duplicates")
    assert duplicates.guarded == 0
    assert duplicates.unguarded is not None
    assert duplicates.unguarded > 500  # everything sent before the outage goes out again
    assert result.figure("unlisted").guarded == 0
    assert result.figure("listed").unguarded == 0


def test_every_unknown_is_listed_and_none_of_them_was_resent(guarded: ReplayRun) -> None:
    assert guarded.listed == guarded.in_doubt
    assert guarded.duplicates == 0
    assert not guarded.completed - guarded.delivered  # recorded as sent: really delivered
    assert not guarded.failed & guarded.delivered  # recorded as not sent: really not sent
    assert guarded.unaccounted == 0
    # Some of the listed ones did go out, some did not: only the provider's logs can tell.
    assert guarded.listed & guarded.delivered
    assert guarded.listed - guarded.delivered


def test_same_figures_every_run(result: DrillResult) -> None:
    again = DRILL.run(SCALE)
    assert again == result
    assert render(again) == render(result)


def test_targets_hold_at_the_full_drill() -> None:
    run = DRILL.run(1.0)
    assert [t.description for t in run.targets if not t.passed] == []
    assert run.figure("messages").guarded == 10_000
