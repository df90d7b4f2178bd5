"""The RQ adapter on real Redis: every write path is checked; a real worker (JSON) runs the jobs."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from sendguard.jobs import PayloadGuard, PayloadPolicy, PayloadRejected, Violation
from sendguard.jobs.rq import JSONSerializer, LeanJob, LeanQueue
from tests.jobs._rq_tasks import Email, boom, send_batch

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]
FAT = Email(1, "x" * 200_000)
SOON = dt.timedelta(seconds=0)


def job_keys(client) -> list[bytes]:
    return [k for k in client.keys("rq:job:*") if k.count(b":") == 2]


@pytest.fixture
def queue(redis_client) -> LeanQueue:
    return LeanQueue("five_minutes", connection=redis_client)


@pytest.mark.parametrize(
    "write",
    [
        lambda q: q.enqueue(send_batch, FAT, [1, 2]),
        lambda q: q.enqueue(send_batch, args=(FAT, [1]), job_timeout=30),
        lambda q: q.enqueue_call(send_batch, args=(1, [2]), kwargs={"email": FAT}),
        lambda q: q.enqueue_at(dt.datetime.now(dt.UTC), send_batch, FAT, [1]),
        lambda q: q.enqueue_in(dt.timedelta(hours=1), send_batch, FAT, [1]),
        lambda q: q.enqueue_many(
            [Queue.prepare_data(send_batch, (1, [1])), Queue.prepare_data(send_batch, (FAT, [2]))]
        ),
        lambda q: q.enqueue(Email(1, "x").__repr__),
    ],
    ids=[
        "enqueue",
        "enqueue-explicit",
        "enqueue_call",
        "enqueue_at",
        "enqueue_in",
        "enqueue_many",
        "bound-method",
    ],
)
def test_every_write_path_refuses_a_fat_payload_and_writes_nothing(queue, redis_client, write):
    with pytest.raises(PayloadRejected) as refused:
        write(queue)
    assert refused.value.queue == "five_minutes"
    assert "pass" in refused.value.advice
    assert job_keys(redis_client) == []
    assert redis_client.llen("rq:queue:five_minutes") == 0
    assert redis_client.zcard("rq:scheduled:five_minutes") == 0


def test_the_error_names_function_queue_path_and_advice(queue):
    with pytest.raises(PayloadRejected) as refused:
        queue.enqueue(send_batch, FAT, [1, 2])
    assert str(refused.value) == (
        "tests.jobs._rq_tasks.send_batch on queue 'five_minutes': args[0] is "
        "tests.jobs._rq_tasks.Email: pass its id"
    )


def test_jobs_built_outside_the_queue_are_checked_when_serialised(redis_client):
    plain = Queue("default", connection=redis_client, serializer=JSONSerializer)
    job = LeanJob.create(
        send_batch, args=(FAT, [1]), connection=redis_client, serializer=JSONSerializer
    )
    with pytest.raises(PayloadRejected):
        plain.enqueue_job(job)
    lean = LeanJob.create(
        send_batch, args=(1, [1]), connection=redis_client, serializer=JSONSerializer
    )
    lean.args = ({"body": "x" * 100_000}, [1])  # replaced after it was built: checked again
    with pytest.raises(PayloadRejected) as refused:
        plain.enqueue_job(lean)
    assert refused.value.violation is Violation.SIZE
    assert job_keys(redis_client) == []


def test_enqueue_many_checks_the_batch_budget_before_writing(redis_client):
    class TightJob(LeanJob):
        payloads = PayloadGuard(PayloadPolicy(batch_max_bytes=64 * 1024), hooks=[])

    queue = LeanQueue("five_minutes", connection=redis_client, job_class=TightJob)
    datas = [Queue.prepare_data(send_batch, (n, ["r" * 30] * 100)) for n in range(30)]
    with pytest.raises(PayloadRejected) as refused:
        queue.enqueue_many(datas)
    assert refused.value.violation is Violation.BATCH
    assert job_keys(redis_client) == []
    assert len(queue.enqueue_many(datas[:10])) == 10


def test_a_legacy_fat_job_is_not_requeued_and_stays_failed(redis_client):
    legacy = Queue("five_minutes", connection=redis_client)  # pickle, no guard: the old code
    fat = legacy.enqueue(send_batch, {"body": os.urandom(100_000).hex()}, [1])
    lean = legacy.enqueue(send_batch, 1, [1])
    registry = FailedJobRegistry(queue=legacy)
    for job in (fat, lean):
        legacy.remove(job)
        job.set_status(JobStatus.FAILED)
        registry.add(job, ttl=3600)
    lean_registry = FailedJobRegistry("five_minutes", connection=redis_client, job_class=LeanJob)
    with pytest.raises(PayloadRejected) as refused:
        lean_registry.requeue(fat.id)
    assert "it was not requeued" in str(refused.value)
    assert refused.value.size > 64 * 1024
    assert fat.id in registry.get_job_ids()  # still where it was, for purge
    assert Job.fetch(fat.id, connection=redis_client).get_status() is JobStatus.FAILED
    lean_registry.requeue(lean.id)
    assert redis_client.lrange("rq:queue:five_minutes", 0, -1) == [lean.id.encode()]


def test_a_job_class_must_be_lean(redis_client):
    from sendguard import ConfigError

    with pytest.raises(ConfigError, match="LeanJob"):
        LeanQueue("q", connection=redis_client, job_class=Job)


def test_a_real_worker_runs_every_kind_of_lean_job(queue, redis_url):
    ident = uuid.UUID(int=42)
    jobs = [
        queue.enqueue(
            send_batch, 7, [1, 2, 3], sent_at=dt.datetime(2025, 1, 30, tzinfo=dt.UTC), ident=ident
        ),
        queue.enqueue_at(dt.datetime.now(dt.UTC), send_batch, 8, [4]),
        queue.enqueue_in(SOON, send_batch, 9, [5, 6]),
        *queue.enqueue_many([Queue.prepare_data(send_batch, (n, [n])) for n in (10, 11)]),
        queue.enqueue(boom, 1, retry=Retry(max=1)),  # the worker retries it: not re-checked
    ]
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "rq.cli",
            "worker",
            "five_minutes",
            "--burst",
            "--with-scheduler",
            "--url",
            redis_url,
            "--job-class",
            "sendguard.jobs.rq.LeanJob",
            "--queue-class",
            "sendguard.jobs.rq.LeanQueue",
            "--serializer",
            "sendguard.jobs.rq.JSONSerializer",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 0, worker.stderr
    for job in jobs:
        job.refresh()
    results = [job.return_value() for job in jobs[:-1]]
    assert results[0] == {
        "email_id": 7,
        "recipients": 3,
        "extra": {"sent_at": "2025-01-30T00:00:00+00:00", "ident": str(ident)},
    }
    assert [r["email_id"] for r in results] == [7, 8, 9, 10, 11]
    assert all(job.get_status() is JobStatus.FINISHED for job in jobs[:-1])
    assert jobs[-1].get_status() is JobStatus.FAILED
    assert jobs[-1].retries_left == 0
    assert "boom 1" in worker.stderr + worker.stdout
