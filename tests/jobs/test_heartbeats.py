"""Cron heartbeats: runs kept in memory and real Redis, judged on a fake clock, read by probes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sendguard import ConfigError, Event
from sendguard.jobs import (
    CronState,
    HeartbeatRecord,
    HeartbeatRecorded,
    Heartbeats,
    HeartbeatStore,
    MemoryHeartbeatStore,
    assess,
    default_heartbeats,
    heartbeat,
)
from sendguard.testing import FakeClock

MINUTE = 60.0


@pytest.fixture(params=["memory", "redis"])
def board(request) -> Iterator[tuple[Heartbeats, FakeClock]]:
    clock = FakeClock()
    store: HeartbeatStore
    if request.param == "memory":
        store = MemoryHeartbeatStore()
    else:
        from sendguard.jobs.redis_store import RedisHeartbeatStore

        store = RedisHeartbeatStore(request.getfixturevalue("redis_url"))
    heartbeats = Heartbeats(store, clock=clock, hooks=[])
    yield heartbeats, clock
    heartbeats.close()


def test_runs_are_recorded_with_their_durations(board: tuple[Heartbeats, FakeClock]):
    heartbeats, clock = board

    @heartbeats.heartbeat("digest", every="5m", grace="1m")
    def digest() -> str:
        clock.advance(12.5)
        return "sent"

    assert digest() == "sent"
    record = heartbeats.record("digest")
    assert record is not None
    start = clock.wall() - 12.5
    assert (record.every, record.grace, record.first_seen) == (300.0, 60.0, start)
    assert (record.started_at, record.succeeded_at, record.failed_at) == (start, clock.wall(), None)
    assert (record.duration, record.runs, record.failures, record.running) == (12.5, 1, 0, False)
    assert heartbeats.last_beat("digest") == clock.wall()
    assert heartbeats.last_beat("never") is None


def test_failures_are_recorded_in_a_row_and_a_success_clears_them(
    board: tuple[Heartbeats, FakeClock],
):
    heartbeats, clock = board
    call = heartbeats.heartbeat("sweep", every=MINUTE)

    @call
    def sweep() -> None:
        clock.advance(1)
        raise ConnectionError("relay refused")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            sweep()
    record = heartbeats.record("sweep")
    assert record is not None
    assert (record.failures, record.runs, record.error) == (2, 2, "ConnectionError: relay refused")
    status = heartbeats.status("sweep")
    assert status is not None
    assert status.state is CronState.FAILING
    assert "2 in a row" in status.message
    with call:
        clock.advance(1)
    record = heartbeats.record("sweep")
    assert record is not None
    assert (record.failures, record.error, record.runs) == (0, "", 3)
    assert heartbeats.status("sweep").state is CronState.OK  # type: ignore[union-attr]


def test_a_job_goes_late_then_stalled_when_it_stops_running(board: tuple[Heartbeats, FakeClock]):
    heartbeats, clock = board
    with heartbeats.heartbeat("digest", every=5 * MINUTE, grace=MINUTE):
        pass
    states = []
    for _ in range(7):
        clock.advance(MINUTE)
        states.append(heartbeats.status("digest").state)  # type: ignore[union-attr]
    assert states == [CronState.OK] * 5 + [CronState.LATE] + [CronState.STALLED]  # strictly past
    stalled = heartbeats.status("digest")
    assert stalled is not None
    assert stalled.overdue == pytest.approx(MINUTE)
    assert "no run finished for 7m 00s" in stalled.message


def test_a_registered_job_that_never_runs_shows_stalled(board: tuple[Heartbeats, FakeClock]):
    heartbeats, clock = board
    heartbeats.register("weekly", every="1h", grace="10m")
    assert heartbeats.status("weekly").state is CronState.OK  # type: ignore[union-attr]
    clock.advance(3601 + 600)
    status = heartbeats.status("weekly")
    assert status is not None
    assert status.state is CronState.STALLED
    assert "since first seen" in status.message


def test_statuses_lists_problems_first(board: tuple[Heartbeats, FakeClock]):
    heartbeats, clock = board
    with heartbeats.heartbeat("b-ok", every=10 * MINUTE):
        pass
    with pytest.raises(RuntimeError), heartbeats.heartbeat("c-failing", every=10 * MINUTE):
        raise RuntimeError("boom")
    with heartbeats.heartbeat("a-stalled", every=MINUTE, grace=MINUTE):
        pass
    clock.advance(3 * MINUTE)
    assert [(s.name, s.state.value) for s in heartbeats.statuses()] == [
        ("a-stalled", "stalled"),
        ("c-failing", "failing"),
        ("b-ok", "ok"),
    ]


def test_async_jobs_are_recorded_too(board: tuple[Heartbeats, FakeClock]):
    heartbeats, clock = board

    @heartbeats.heartbeat("async-digest", every=MINUTE)
    async def digest() -> int:
        await asyncio.sleep(0)
        clock.advance(2)
        return 3

    assert asyncio.run(digest()) == 3
    record = heartbeats.record("async-digest")
    assert record is not None
    assert (record.runs, record.duration) == (1, 2.0)


def test_a_long_run_is_mentioned_in_the_status():
    record = HeartbeatRecord("x", every=60, grace=60, first_seen=0, started_at=100, succeeded_at=50)
    assert record.running
    status = assess(record, 130)
    assert (status.state, status.since_success) == (CronState.LATE, 80)
    assert status.message == "no success for 1m 20s (expected every 1m 00s); a run started 30s ago"
    assert assess(record, 200).state is CronState.STALLED


def test_telemetry_reports_each_start_and_end():
    events: list[Event] = []
    clock = FakeClock()
    heartbeats = Heartbeats(clock=clock, hooks=[events.append])
    with heartbeats.heartbeat("digest", every=MINUTE):
        clock.advance(3)
    assert [(e.outcome, e.duration) for e in events if isinstance(e, HeartbeatRecorded)] == [
        ("started", None),
        ("succeeded", 3.0),
    ]


def test_a_store_outage_never_fails_the_job(restartable_redis):
    from sendguard.jobs.redis_store import RedisHeartbeatStore

    events: list[Event] = []
    heartbeats = Heartbeats(
        RedisHeartbeatStore(restartable_redis.url, timeout=0.2), hooks=[events.append]
    )
    restartable_redis.stop(cleanup=False)

    @heartbeats.heartbeat("digest", every=MINUTE)
    def digest() -> str:
        return "ran"

    assert digest() == "ran"
    assert digest() == "ran"  # backing off: no second wait on the dead store
    assert [e.kind for e in events].count("sendguard.store.unavailable") == 1
    heartbeats.close()


def test_the_redis_layout_is_what_the_docs_and_sendguard_health_read(redis_url, redis_client):
    from sendguard.health import HeartbeatProbe, RedisHeartbeats, Status
    from sendguard.jobs.redis_store import HEARTBEAT_INDEX_KEY, RedisHeartbeatStore

    clock = FakeClock(wall=1_800_000_000.0)
    heartbeats = Heartbeats(RedisHeartbeatStore(redis_url), clock=clock, hooks=[])
    with heartbeats.heartbeat("nightly-digest", every="24h", grace="1h"):
        clock.advance(90)
    fields = {
        k.decode(): v.decode()
        for k, v in redis_client.hgetall("sendguard:{heartbeat:nightly-digest}:runs").items()
    }
    assert sorted(fields) == [
        "duration",
        "error",
        "every",
        "failures",
        "first",
        "grace",
        "name",
        "runs",
        "started",
        "succeeded",
    ]
    assert (fields["every"], fields["succeeded"], fields["runs"]) == (
        "86400.0",
        "1800000090.0",
        "1",
    )
    assert redis_client.zrange(HEARTBEAT_INDEX_KEY, 0, -1) == [b"nightly-digest"]
    # sendguard.health reads the same beat, through its own store or through ours.
    assert RedisHeartbeats(redis_url, clock=clock).last_beat("nightly-digest") == 1_800_000_090.0
    probe = HeartbeatProbe(heartbeats, "nightly-digest", every=86400, grace=3600, clock=clock)
    assert probe.check().status is Status.PASS
    clock.advance(86400 + 3601)
    assert probe.check().status is Status.FAIL
    heartbeats.close()


def test_bad_schedules_fail_at_once():
    with pytest.raises(ConfigError, match="every"):
        heartbeat("x", every=0)
    with pytest.raises(ConfigError, match="bad duration"):
        heartbeat("x", every="soon")
    with pytest.raises(ConfigError, match="name"):
        heartbeat("", every=60)
    with pytest.raises(ConfigError, match="unknown heartbeat store"):
        Heartbeats("mysql://x")
    assert default_heartbeats() is default_heartbeats()
    assert heartbeat("x", every=600).grace == 120.0  # a fifth of every, at least a minute
