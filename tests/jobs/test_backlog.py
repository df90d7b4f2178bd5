"""Backlog inspection and purge on a real RQ backlog in real Redis, never deserialising a job."""

from __future__ import annotations

import datetime as dt
import os
import pickle

import pytest
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry

from sendguard import ConfigError
from sendguard.jobs import PurgeFilter, inspect_backlog, purge_backlog
from tests.jobs._rq_tasks import boom, send_batch

pytestmark = pytest.mark.redis
HOUR = dt.timedelta(hours=1)
FAT_BYTES = 60_000


class Poisoned:
    """Unpickling it fails: the tools must never deserialise a job."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_explode, ())


def _explode() -> None:
    raise AssertionError("a job was deserialised")


@pytest.fixture
def backlog(redis_client) -> dict[str, list[str]]:
    """30 fat scheduled jobs (like the incident), 25 lean queued ones, 2 failed, 1 orphan."""
    emails = Queue("five_minutes", connection=redis_client)  # pickle: the old code path
    later = dt.datetime.now(dt.UTC) + HOUR
    fat = [
        emails.enqueue_at(
            later, send_batch, {"body": os.urandom(FAT_BYTES), "x": Poisoned()}, [1] * 100
        ).id
        for _ in range(30)
    ]
    lean = [emails.enqueue(send_batch, n, [n]).id for n in range(25)]
    other = Queue("default", connection=redis_client)
    failed = []
    registry = FailedJobRegistry(queue=other)
    for n in range(2):
        job = other.enqueue(boom, n)
        other.remove(job)
        job.set_status(JobStatus.FAILED)
        registry.add(job, ttl=3600)
        failed.append(job.id)
    redis_client.zrem("rq:scheduled:five_minutes", fat[0])  # removed by hand, hash left behind
    return {"fat": fat, "lean": lean, "failed": failed}


def test_inspect_counts_sizes_and_ranks_without_deserialising(redis_client, backlog):
    report = inspect_backlog(redis_client, top=3, batch=7, orphans=True)
    rows = {(r.queue, r.registry): r for r in report.registries}
    assert set(rows) == {
        ("five_minutes", "scheduled"),
        ("five_minutes", "queued"),
        ("default", "failed"),
        ("*", "orphaned"),
    }
    scheduled = rows[("five_minutes", "scheduled")]
    assert scheduled.count == 29
    assert (
        29 * FAT_BYTES < scheduled.data_bytes < 29 * FAT_BYTES * 1.1
    )  # random bytes: no zlib gain
    assert scheduled.memory_bytes is not None
    assert scheduled.memory_bytes > scheduled.data_bytes
    assert scheduled.oldest_age is not None
    assert 0 <= scheduled.oldest_age < 60
    assert rows[("five_minutes", "queued")].count == 25
    assert rows[("default", "failed")].count == 2
    orphan = rows[("*", "orphaned")]
    assert (orphan.count, orphan.data_bytes > FAT_BYTES) == (1, True)
    top = report.functions[0]
    assert (top.function, top.count) == ("tests.jobs._rq_tasks.send_batch", 55)
    assert [j.function for j in report.largest] == ["tests.jobs._rq_tasks.send_batch"] * 3
    assert all(j.data_bytes > FAT_BYTES for j in report.largest)
    assert report.jobs == 29 + 25 + 2 + 1


def test_inspect_one_queue_without_memory_usage(redis_client, backlog):
    report = inspect_backlog(redis_client, queues=["default"], memory=False, top=1)
    assert [(r.registry, r.count, r.memory_bytes) for r in report.registries] == [
        ("failed", 2, None)
    ]
    assert report.largest[0].function == "tests.jobs._rq_tasks.boom"


def test_inspect_with_top_zero_counts_without_ranking(redis_client, backlog):
    report = inspect_backlog(redis_client, queues=["five_minutes"], memory=False, top=0)
    assert report.jobs == 29 + 25 and report.data_bytes > 29 * FAT_BYTES
    assert report.largest == () and report.functions == ()


def test_a_registry_entry_whose_hash_is_gone_is_counted_as_missing(redis_client, backlog):
    redis_client.delete(f"rq:job:{backlog['lean'][0]}")
    report = inspect_backlog(redis_client, queues=["five_minutes"])
    queued = next(r for r in report.registries if r.registry == "queued")
    assert (queued.count, queued.missing) == (25, 1)


def test_purge_is_a_dry_run_by_default(redis_client, backlog):
    keys_before = sorted(redis_client.keys("*"))
    report = purge_backlog(
        redis_client, PurgeFilter(function="send_batch", min_bytes=FAT_BYTES), batch=4, sample=5
    )
    assert (report.executed, report.matched, report.deleted) == (False, 29, 0)
    assert report.by_registry == {("five_minutes", "scheduled"): 29}
    assert len(report.sample) == 5
    assert report.matched_bytes > 29 * FAT_BYTES
    assert sorted(redis_client.keys("*")) == keys_before


def test_purge_removes_from_registries_and_deletes_the_jobs(redis_client, backlog):
    wanted = PurgeFilter(
        function="tests.jobs.*.send_batch",
        min_bytes=FAT_BYTES,
        registries=("scheduled", "orphaned"),
    )
    report = purge_backlog(redis_client, wanted, execute=True, batch=4)
    assert (report.matched, report.deleted) == (30, 30)
    assert report.by_registry == {
        ("five_minutes", "scheduled"): 29,
        ("five_minutes", "orphaned"): 1,
    }
    assert redis_client.zcard("rq:scheduled:five_minutes") == 0
    for job_id in backlog["fat"]:
        assert not redis_client.exists(f"rq:job:{job_id}")
    assert redis_client.llen("rq:queue:five_minutes") == 25  # the lean jobs are untouched
    assert inspect_backlog(redis_client, orphans=True).registries[-1].count == 0


def test_purging_a_queue_list_in_batches_skips_nothing(redis_client, backlog):
    wanted = PurgeFilter(function="send_batch", registries=("queued",), queues=("five_minutes",))
    report = purge_backlog(redis_client, wanted, execute=True, batch=4)
    assert (report.matched, report.deleted) == (25, 25)
    assert redis_client.llen("rq:queue:five_minutes") == 0


def test_purge_by_age(redis_client, backlog):
    now = dt.datetime.now(dt.UTC).timestamp()
    none = purge_backlog(redis_client, PurgeFilter(older_than=3600))
    assert none.matched == 0
    later = purge_backlog(
        redis_client, PurgeFilter(older_than=3600, registries=("failed",)), now=now + 7200
    )
    assert later.matched == 2


def test_a_purge_needs_a_criterion(redis_client, backlog):
    with pytest.raises(ConfigError, match="no criterion"):
        PurgeFilter()
    with pytest.raises(ConfigError, match="registries"):
        PurgeFilter(function="x", registries=("everywhere",))
    everything = purge_backlog(redis_client, PurgeFilter(everything=True, queues=("default",)))
    assert everything.matched == 2


def test_the_poison_would_have_exploded_if_loaded():
    with pytest.raises(AssertionError, match="deserialised"):
        pickle.loads(pickle.dumps(Poisoned()))
