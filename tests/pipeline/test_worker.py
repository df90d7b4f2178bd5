"""The queue and the worker: lean JSON jobs on real Redis, batches over real SMTP sinks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sendguard.jobs import PayloadRejected, Violation
from sendguard.pipeline.api import enqueue_send
from sendguard.pipeline.config import PipelineConfig
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.jobqueue import SEND_BATCH, RqQueue, ThreadQueue
from sendguard.pipeline.records import DeliveryState, Records
from sendguard.pipeline.worker import BatchSender, DeliveryParts, bind, build_delivery, unbind
from tests.pipeline.conftest import providers, stored_counts

S = DeliveryState


@pytest.mark.redis
def test_rq_jobs_are_lean_json_and_fat_payloads_are_refused_at_enqueue(redis_url, redis_client):
    queue = RqQueue(redis_url, "pipeline-test")
    try:
        assert queue.enqueue_batches(7, [[1, 2, 3], [4, 5]]) == 2
        email = Records.sqlite().create_email("An object", "x" * 10_000)
        with pytest.raises(PayloadRejected) as refused:
            queue.enqueue(email, [1, 2])  # type: ignore[arg-type]
        assert refused.value.path == "args[0]" and "pass its id" in str(refused.value)
        with pytest.raises(PayloadRejected) as too_big:
            queue.enqueue(7, list(range(100_000, 105_000)))
        assert too_big.value.violation is Violation.SIZE
        with pytest.raises(PayloadRejected):  # one bad batch: nothing of the fan-out is written
            queue.enqueue_batches(7, [[1], [2], list(range(100_000, 105_000))])
        assert queue.backlog() == 2
        ids = [i.decode() for i in redis_client.lrange("rq:queue:pipeline-test", 0, -1)]
        payloads = [
            json.loads(zlib.decompress(redis_client.hget(f"rq:job:{i}", "data"))) for i in ids
        ]
        assert payloads == [
            [SEND_BATCH, None, [7, [1, 2, 3]], {}],
            [SEND_BATCH, None, [7, [4, 5]], {}],
        ]
        assert max(redis_client.hstrlen(f"rq:job:{i}", "data") for i in ids) < 200
    finally:
        queue.close()


def test_the_in_process_queue_applies_the_same_guard_and_keeps_failures():
    calls: list[tuple[int, list[int], int]] = []

    def handler(email_id: int, ids: list[int], retry_round: int) -> None:
        if email_id == 13:
            raise RuntimeError("unlucky")
        calls.append((email_id, ids, retry_round))

    queue = ThreadQueue("inline", handler, workers=0)
    with pytest.raises(PayloadRejected):
        queue.enqueue(7, list(range(100_000, 105_000)))
    queue.enqueue_batches(7, [[1, 2], [3]])
    queue.enqueue(13, [4])
    queue.enqueue(7, [5], retry_round=1)
    assert queue.backlog() == 4
    queue.drain(5)
    assert calls == [(7, [1, 2], 0), (7, [3], 0), (7, [5], 1)]
    assert queue.failures == [(13, [4], "RuntimeError: unlucky")]
    queue.enqueue(7, [6], delay=30)
    assert queue.backlog() == 0  # delayed: not waiting yet
    with pytest.raises(TimeoutError, match="1 waiting"):
        queue.drain(0.05)
    queue.close()


Sending = tuple[PipelineConfig, Records, DeliveryParts, ThreadQueue, BatchSender]


@pytest.fixture
def sending(sinks, tmp_path) -> Iterator[Sending]:
    config = PipelineConfig(
        providers=providers(*sinks), max_rounds=2, defer_delay=0.01, batch_size=10
    )
    records = Records.sqlite(str(tmp_path / "records.db"))
    parts = build_delivery(config)
    sender = BatchSender(config, records, parts.deliverer)
    queue = ThreadQueue(config.queue_name, sender.send_batch, workers=2).start()
    sender.queue = queue
    yield config, records, parts, queue, sender
    queue.close()
    parts.close()
    records.close()


def test_a_batch_is_sent_and_a_replayed_batch_sends_nothing_twice(sinks, sending):
    config, records, _, queue, sender = sending
    email = records.create_email("Hello", "Hi there")
    mailing = records.create_list("readers", [f"r{n}@example.org" for n in range(25)])
    done = enqueue_send(records, queue, email.id, mailing.id, batch_size=config.batch_size)
    assert (done.recipients, done.jobs) == (25, 3)
    queue.drain(30)
    assert records.state_counts(email.id) == {S.SENT: 25}
    assert {d.provider for d in records.deliveries(email.id)} == {"primary"}

    # The records lose track (a crash before the outcome was written); the jobs run again.
    ids = [d.recipient_id for d in records.deliveries(email.id)]
    records.mark(email.id, ids, S.QUEUED)
    queue.enqueue_batches(email.id, [ids[:10], ids[10:]])
    queue.drain(30)
    assert sender.counts["duplicate"] == 25
    assert records.state_counts(email.id) == {S.SENT: 25}  # mirrored from the ledger
    assert {d.provider for d in records.deliveries(email.id)} == {"primary"}
    counts = stored_counts(*sinks)
    assert len(counts) == 25 and set(counts.values()) == {1}


def test_deferred_messages_come_back_a_bounded_number_of_times(sinks, sending):
    config, records, parts, queue, sender = sending
    for sink in sinks:
        sink.faults.down = True
    email = records.create_email("Hello", "Hi there")
    mailing = records.create_list("readers", [f"r{n}@example.org" for n in range(6)])
    enqueue_send(records, queue, email.id, mailing.id, batch_size=config.batch_size)
    queue.drain(30)
    assert records.state_counts(email.id) == {S.DEFERRED: 6}
    assert sender.counts["deferred"] == 6 * 3  # the first round and two more
    assert sender.counts["requeued"] == 6 * 2
    assert stored_counts(*sinks) == {}

    for sink in sinks:
        sink.faults.down = False
    for name in ("provider:primary", "provider:backup"):
        parts.breakers.reset(name)
    again = enqueue_send(records, queue, email.id, mailing.id, batch_size=config.batch_size)
    assert again.recipients == 6  # deferred messages are known not sent: queued again
    queue.drain(30)
    assert records.state_counts(email.id) == {S.SENT: 6}
    assert set(stored_counts(*sinks).values()) == {1}


def test_a_message_that_cannot_be_built_is_rejected_not_retried(sinks, sending):
    config, records, _, queue, sender = sending
    email = records.create_email("Two\nlines", "a subject no mail header can carry")
    mailing = records.create_list("readers", ["a@example.org"])
    enqueue_send(records, queue, email.id, mailing.id, batch_size=config.batch_size)
    queue.drain(30)
    [row] = records.deliveries(email.id)
    assert row.state is S.REJECTED and row.detail.startswith("invalid: ")
    assert sender.counts["invalid"] == 1 and stored_counts(*sinks) == {}


@pytest.mark.redis
def test_an_rq_worker_process_sends_from_its_environment(sinks, redis_url, tmp_path):
    config = PipelineConfig(
        providers=providers(*sinks),
        redis_url=redis_url,
        sqlite_path=str(tmp_path / "records.db"),
        queue_name="pipeline-env",
        batch_size=8,
    )
    records = Records.open(config)
    queue = RqQueue(redis_url, config.queue_name)
    try:
        email = records.create_email("Hello", "From another process")
        mailing = records.create_list("readers", [f"r{n}@example.net" for n in range(20)])
        done = enqueue_send(records, queue, email.id, mailing.id, batch_size=config.batch_size)
        assert done.jobs == 3
        command = [
            str(Path(sys.executable).parent / "rq"), "worker", config.queue_name, "--burst",
            "--url", redis_url, "--job-class", "sendguard.pipeline.jobqueue.PipelineJob",
            "--queue-class", "sendguard.jobs.rq.LeanQueue",
            "--serializer", "sendguard.jobs.rq.JSONSerializer",
        ]  # fmt: skip
        run = subprocess.run(
            command,
            env={**os.environ, **config.to_env()},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert records.state_counts(email.id) == {S.SENT: 20}
        assert queue.failed() == 0 and queue.backlog() == 0
        counts = stored_counts(*sinks)
        assert len(counts) == 20 and set(counts.values()) == {1}
    finally:
        queue.close()
        records.close()


def test_worker_threads_share_one_deliverer_without_duplicates(sinks, sending):
    config, records, _, queue, sender = sending
    email = records.create_email("Hello", "Hi")
    mailing = records.create_list("readers", [f"r{n}@example.com" for n in range(40)])
    enqueue_send(records, queue, email.id, mailing.id, batch_size=config.batch_size)
    # The same batches enqueued again at once: two workers race for the same keys.
    ids = [d.recipient_id for d in records.deliveries(email.id)]
    queue.enqueue_batches(email.id, [ids[n : n + 10] for n in range(0, 40, 10)])
    queue.drain(30)
    assert records.state_counts(email.id) == {S.SENT: 40}
    assert (sender.counts["sent"], sender.counts["duplicate"]) == (40, 40)
    counts = stored_counts(*sinks)
    assert len(counts) == 40 and set(counts.values()) == {1}


def test_unknowns_follow_the_ledger_once_an_operator_resolves_them(sinks):
    primary, _ = sinks
    primary.faults = FaultPlan({Fault.HANG: 1.0})  # takes the body, never answers
    config = PipelineConfig(providers=providers(primary, timeout=0.3))
    records = Records.sqlite()
    parts = build_delivery(config)
    fast = BatchSender(config, records, parts.deliverer)
    email = records.create_email("Hello", "Hi")
    mailing = records.create_list("readers", ["a@example.org", "b@example.org"])
    first, second = records.queue_deliveries(email.id, mailing.id)
    fast.send_batch(email.id, [first, second])
    assert records.state_counts(email.id) == {S.UNKNOWN: 2}
    assert fast.reconcile(email.id) == {}  # nobody resolved anything yet
    parts.ledger.resolve(f"send:{email.id}:{first}", completed=True, note="in the relay's log")
    parts.ledger.resolve(f"send:{email.id}:{second}", completed=False, note="not in the log")
    assert fast.reconcile(email.id) == {"sent": 1, "deferred": 1}
    primary.faults = FaultPlan()
    assert records.queue_deliveries(email.id, mailing.id) == [second]
    fast.send_batch(email.id, [second])
    assert records.state_counts(email.id) == {S.SENT: 2}
    assert stored_counts(primary) == {f"send:{email.id}:{second}": 1}
    parts.close()
    records.close()


@pytest.mark.redis
def test_rq_defers_through_rqs_scheduler_and_drain_waits_for_it(sinks, redis_url, redis_client):
    for sink in sinks:
        sink.faults.down = True
    config = PipelineConfig(
        providers=providers(*sinks), redis_url=redis_url, max_rounds=2, defer_delay=0.05
    )
    records = Records.sqlite()
    parts = build_delivery(config)
    queue = RqQueue(redis_url, config.queue_name, drain_workers=2)
    sender = BatchSender(config, records, parts.deliverer, queue)
    bind(config.queue_name, sender)
    try:
        email = records.create_email("Hello", "Hi")
        mailing = records.create_list("readers", ["a@example.org", "b@example.net"])
        enqueue_send(records, queue, email.id, mailing.id, batch_size=1)
        queue.drain(30)
        assert sender.counts["deferred"] == 2 * 3 and sender.counts["requeued"] == 2 * 2
        assert records.state_counts(email.id) == {S.DEFERRED: 2}
        assert queue.failed() == 0
        assert redis_client.zcard(f"rq:scheduled:{config.queue_name}") == 0
    finally:
        unbind(config.queue_name, sender)
        queue.close()
        parts.close()
        records.close()
