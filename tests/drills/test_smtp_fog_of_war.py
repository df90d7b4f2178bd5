"""The smtp-fog-of-war drill, over real aiosmtpd sinks: the pipeline sends nothing twice and
lists what is in doubt; the naive smtplib sender duplicates and keeps hitting the dead server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendguard.drills import DrillResult, render
from sendguard.drills.smtp_fog_of_war import (
    CRASH_AT,
    DRILL,
    SEED,
    FogRun,
    Witness,
    figures,
    recipients,
    run_fog,
)
from sendguard.pipeline.faults import Fault, FaultPlan
from tests.drills._recorded import RecordedDrill

SCALE = 0.25  # 250 readers; the primary dies at its 100th message


@pytest.fixture(scope="module")
def runs() -> RecordedDrill[FogRun]:
    return RecordedDrill(DRILL, run_fog, figures, SCALE)


@pytest.fixture(scope="module")
def result(runs: RecordedDrill[FogRun]) -> DrillResult:
    return runs.result


@pytest.fixture(scope="module")
def guarded(runs: RecordedDrill[FogRun]) -> FogRun:
    return runs.runs[True]


@pytest.fixture(scope="module")
def bare(runs: RecordedDrill[FogRun]) -> FogRun:
    return runs.runs[False]


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert result.passed


def test_unguarded_run_sends_twice_lists_nothing_and_hammers_the_dead_primary(
    result: DrillResult,
) -> None:
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    assert verdicts["duplicates"] is False
    assert verdicts["unlisted"] is False
    assert verdicts["dead_connections"] is False
    assert verdicts["lost"] is True  # the blind resend does deliver everything: twice, for some
    duplicates = result.figure("duplicates")
    assert (duplicates.unguarded or 0) > 0
    assert duplicates.guarded == 0
    assert result.figure("unknown_listed").unguarded == 0
    assert result.figure("unknown_delivered").unguarded is None  # nothing listed
    dead = result.figure("dead_connections")
    assert dead.unguarded is not None
    assert dead.guarded is not None
    assert dead.unguarded > 10 * max(1.0, dead.guarded)


def test_table_renders_both_runs_and_the_targets(result: DrillResult) -> None:
    text = render(result)
    lines = text.splitlines()
    assert lines[0] == f"drill smtp-fog-of-war (scale {SCALE:g}): {DRILL.incident}"
    for metric in DRILL.metrics:
        assert any(line.startswith(metric.label) for line in lines), metric.label
    assert "nobody gets the newsletter twice" in text
    assert lines[-1] == f"PASS: {len(DRILL.goals)} of {len(DRILL.goals)} targets met"


def test_guarded_every_reader_got_it_once_or_is_listed(guarded: FogRun) -> None:
    listed = guarded.listed
    assert listed is not None
    assert listed, "the primary dropped replies: some outcomes must be unknown"
    for reader in guarded.recipients:
        if reader in listed:
            assert guarded.stored[reader] <= 1, reader
        else:
            assert guarded.stored[reader] == 1, reader
    assert guarded.in_doubt <= listed  # the sinks' truth: everything in doubt is listed
    # The pipeline's own rows agree: every message sent or unknown, none lost or deferred.
    assert guarded.states == {"sent": len(guarded.recipients) - len(listed), "unknown": len(listed)}


def test_primary_dies_partway_and_the_secondary_takes_the_rest(
    guarded: FogRun, bare: FogRun
) -> None:
    readers = len(recipients(SCALE))
    for run in (guarded, bare):
        assert 0 < run.received["primary"] < CRASH_AT * readers + 5
        assert run.received["secondary"] > (1 - CRASH_AT) * readers - 5
        assert run.failover is not None
    assert guarded.failover is not None
    assert guarded.failover < 1.0


def test_naive_sender_duplicates_exactly_messages_that_were_in_doubt(bare: FogRun) -> None:
    assert bare.listed is None
    duplicated = {r for r in bare.recipients if bare.stored[r] >= 2}
    assert duplicated
    assert duplicated <= bare.in_doubt  # a dropped reply, then a resend of a stored message
    assert all(bare.stored[r] >= 1 for r in bare.recipients)
    resent = bare.states["resent by the operator"]
    assert resent >= len(bare.recipients) * (1 - CRASH_AT) - 5


@given(
    crash_at=st.integers(min_value=1, max_value=40),
    readers=st.lists(st.sampled_from(recipients(0.25)[:30]), max_size=50),
)
def test_witness_draws_as_its_plan_and_crashes_at_its_nth_message(
    crash_at: int, readers: list[str]
) -> None:
    rates = {Fault.DROP_AFTER_DATA: 0.3, Fault.TRANSIENT: 0.1}
    witness, plain = Witness(rates, seed=SEED, crash_at=crash_at), FaultPlan(rates, seed=SEED)
    dropped: set[str] = set()
    for n, reader in enumerate(readers):
        fault = witness.fault_for(reader, n)
        if n + 1 >= crash_at:  # the crash_at-th message and every one after: refused
            assert witness.down
            assert fault is Fault.REFUSE
        else:
            assert not witness.down
            assert fault is plain.fault_for(reader, n)
            if fault is Fault.DROP_AFTER_DATA:
                dropped.add(reader)
    assert witness.dropped == dropped
    assert len(witness.arrivals) == len(readers)
    assert (witness.died is not None) == (len(readers) >= crash_at)
