"""Redis, RQ and Celery backlogs, and heartbeats, against the test bed's real redis-server."""

from __future__ import annotations

import time

import pytest
import redis

from sendguard import ConfigError
from sendguard.health import (
    CeleryBacklogProbe,
    HeartbeatProbe,
    MemoryHeartbeats,
    RedisHeartbeats,
    RedisProbe,
    RqBacklogProbe,
    Status,
    Thresholds,
    run_probe,
)
from sendguard.health._queues import parse_enqueued_at
from sendguard.testing import FakeClock
from sendguard.testing.servers import free_port

pytestmark = pytest.mark.redis


def test_redis_probe_reports_memory_against_maxmemory(redis_url, redis_client) -> None:
    probe = RedisProbe(redis_url)
    try:
        result = run_probe(probe)
        assert result.status is Status.PASS
        assert result.observed_unit == "By"  # no maxmemory: bytes in use
        used = int(redis_client.info("memory")["used_memory"])
        redis_client.config_set("maxmemory", str(int(used / 0.9)))
        result = run_probe(probe)
        assert result.status is Status.WARN
        assert result.observed_unit == "%"
        assert 85 <= float(result.observed_value) <= 100  # type: ignore[arg-type]
        assert result.message.startswith("memory at ")
    finally:
        redis_client.config_set("maxmemory", "0")
        probe.close()


def test_redis_down_fails_fast() -> None:
    probe = RedisProbe(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    started = time.monotonic()
    result = run_probe(probe)
    probe.close()
    assert time.monotonic() - started < 1.0
    assert result.status is Status.FAIL
    assert result.message.startswith("Redis did not answer: ConnectionError")


def enqueue_rq(client: redis.Redis, queue: str, job_id: str, enqueued_at: str) -> None:
    client.rpush(f"rq:queue:{queue}", job_id)
    client.hset(f"rq:job:{job_id}", mapping={"enqueued_at": enqueued_at, "data": b"\x80pickle"})


def test_rq_backlog_depth_and_oldest_age_without_unpickling(redis_url, redis_client) -> None:
    clock = FakeClock(wall=1_767_225_600.0)  # 2026-01-01T00:00:00Z
    enqueue_rq(redis_client, "emails", "a", "2025-12-31T23:50:00.000000Z")  # 10 min ago
    enqueue_rq(redis_client, "emails", "b", "2025-12-31T23:59:00.000000Z")
    probe = RqBacklogProbe(redis_url, "emails", clock=clock,
                           age=Thresholds.above(warn=300, fail=900))  # fmt: skip
    result = run_probe(probe)
    probe.close()
    assert result.observed_value == 2
    assert result.details["oldest_age_s"] == 600.0
    assert result.status is Status.WARN
    assert result.message == "2 jobs waiting in 'emails', the oldest waiting 600s"
    assert probe.name == "rq/emails"


def test_rq_empty_queue_passes(redis_url) -> None:
    probe = RqBacklogProbe(redis_url, "empty")
    result = run_probe(probe)
    probe.close()
    assert (result.status, result.observed_value, result.details["oldest_age_s"]) == (
        Status.PASS, 0, None,
    )  # fmt: skip


def test_celery_backlog_watches_the_head_message_across_priority_lists(
    redis_url, redis_client
) -> None:
    clock = FakeClock()
    for n in range(3):
        redis_client.lpush("celery", f'{{"body": "task {n}"}}')
    redis_client.lpush("celery\x06\x163", '{"body": "priority 3"}')
    probe = CeleryBacklogProbe(redis_url, clock=clock, depth=Thresholds.above(warn=10),
                               age=Thresholds.above(warn=60))  # fmt: skip
    first = run_probe(probe)
    assert first.observed_value == 4
    assert first.details["oldest_age_s"] == 0.0
    assert first.details["age_is_lower_bound"] is True
    clock.advance(90)
    second = run_probe(probe)
    assert second.status is Status.WARN
    assert second.details["oldest_age_s"] == 90.0
    assert "at least 90s" in second.message
    redis_client.rpop("celery")  # a worker took the head message of the main list
    clock.advance(10)
    third = run_probe(probe)
    assert third.details["oldest_age_s"] == 100.0  # the priority list's head is older still
    probe.close()


def test_enqueued_at_formats() -> None:
    assert parse_enqueued_at(b"2026-01-01T00:00:00.000000Z") == 1_767_225_600.0
    assert parse_enqueued_at("2026-01-01T00:00:00") == 1_767_225_600.0
    assert parse_enqueued_at("not a date") is None
    assert parse_enqueued_at(None) is None


def test_heartbeat_passes_warns_when_late_fails_when_missed() -> None:
    clock = FakeClock()
    beats = MemoryHeartbeats(clock)
    probe = HeartbeatProbe(beats, "nightly", every=300, grace=60, clock=clock)
    assert run_probe(probe).message == "no heartbeat from 'nightly' yet (expected every 300s)"
    beats.beat("nightly")
    assert run_probe(probe).status is Status.PASS
    clock.advance(301)
    assert run_probe(probe).status is Status.WARN
    clock.advance(60)
    result = run_probe(probe)
    assert result.status is Status.FAIL
    assert (
        result.message == "'nightly' missed its beat: last one 361s ago, expected every "
        "300s (+60s grace)"
    )


def test_redis_heartbeats_are_shared_and_bounded(redis_url, redis_client) -> None:
    clock = FakeClock()
    writer, reader = RedisHeartbeats(redis_url, clock=clock), RedisHeartbeats(redis_url)
    try:
        writer.beat("cron-digest")
        assert reader.last_beat("cron-digest") == clock.wall()
        key = RedisHeartbeats.key("cron-digest")
        assert key == "sendguard:{heartbeat:cron-digest}:last"
        assert 0 < redis_client.ttl(key) <= 7 * 86400
        probe = HeartbeatProbe(reader, "cron-digest", every=60, clock=clock)
        assert run_probe(probe).status is Status.PASS
    finally:
        writer.close()
        reader.close()


def test_heartbeat_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"HeartbeatProbe\.every"):
        HeartbeatProbe(MemoryHeartbeats(), "x", every=0)
    with pytest.raises(ConfigError, match="last_beat"):
        HeartbeatProbe(object(), "x", every=1)  # type: ignore[arg-type]
