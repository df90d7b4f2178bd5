"""Helpers of the end-to-end tests: the outage, the Redis sampler, the send and the checks."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from sendguard.jobs import EntryState, inspect_backlog
from sendguard.pipeline import Pipeline
from sendguard.pipeline.faults import Fault
from sendguard.pipeline.jobqueue import RqQueue, ThreadQueue
from sendguard.pipeline.records import DeliveryState
from sendguard.pipeline.sinks import SinkServer
from tests.pipeline.conftest import AsgiClient

S = DeliveryState
DOMAINS = ("example.com", "example.net", "example.org")


def addresses(n: int) -> list[str]:
    """`n` addresses over three domains, in the order the list stores them."""
    return [f"reader{i}@{DOMAINS[i % len(DOMAINS)]}" for i in range(n)]


@dataclass
class Outage:
    """Takes the primary down once it stored `down_after` messages (resetting its open
    connections), and back up once the backup stored `up_after`; notes how many messages
    the primary held then, and how long it was down."""

    primary: SinkServer
    backup: SinkServer
    down_after: int
    up_after: int
    stop: threading.Event = field(default_factory=threading.Event)
    went_down_at: int | None = None
    came_back_at: int | None = None
    lasted: float = 0.0
    """Seconds the primary was down."""

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="outage", daemon=True)

    def _run(self) -> None:
        self.primary.wait_until(
            lambda s: len(s.received()) >= self.down_after or self.stop.is_set(), 100
        )
        if self.stop.is_set():
            return
        self.primary.faults.down = True
        self.primary.drop_connections()
        self.went_down_at = len(self.primary.received())
        down = time.perf_counter()
        self.backup.wait_until(
            lambda s: len(s.received()) >= self.up_after or self.stop.is_set(), 100
        )
        if self.stop.is_set():
            return
        self.primary.faults.down = False
        self.came_back_at = len(self.primary.received())
        self.lasted = time.perf_counter() - down

    def __enter__(self) -> Outage:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.primary.faults.down = False


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at Redis: memory in use, the queue's jobs and their payload bytes."""

    used_memory: int
    jobs: int
    """Jobs in every registry of the queue: waiting, scheduled, running, finished, failed."""
    payload_bytes: int


class RedisSampler:
    """Samples Redis from a thread of its own every `every` seconds while a run goes
    (``INFO memory`` and `inspect_backlog`); `baseline` is used_memory when it was made."""

    def __init__(self, url: str, queue: str, every: float = 0.05) -> None:
        self.client = redis.Redis.from_url(url)
        self.queue = queue
        self.every = every
        self.baseline = self._used_memory()
        self.samples: list[Sample] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="redis-sampler", daemon=True)

    def _used_memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def sample(self) -> None:
        """Jobs first, memory second: a job written in between is in the memory figure
        and not yet counted, so each sample errs against the budget, never for it."""
        backlog = inspect_backlog(self.client, queues=[self.queue], top=0, memory=False)
        self.samples.append(Sample(self._used_memory(), backlog.jobs, backlog.data_bytes))

    def _run(self) -> None:
        while True:  # the wait paces the samples; it synchronises nothing
            self.sample()
            if self.done.wait(self.every):
                return

    def __enter__(self) -> RedisSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)
        self.sample()  # and one once everything is done
        self.client.close()

    def peak(self) -> Sample:
        """The sample with the most memory in use."""
        return max(self.samples, key=lambda s: s.used_memory)


@dataclass(frozen=True, slots=True)
class Run:
    """One send through the API: ids, what it queued, and how long sending took."""

    email_id: int
    list_id: int
    jobs: int
    seconds: float


def send_through_the_api(pipeline: Pipeline, client: AsgiClient, n: int, timeout: float) -> Run:
    """Create an email and a list of `n` over the API, send one to the other, and work the
    jobs off (`Pipeline.drain`: burst RQ workers, or the worker threads)."""
    created = client.request("POST", "/v1/emails", {"subject": "Issue 1", "body": "Hello!\n"})
    assert created.status_code == 201, created.text
    listed = client.request("POST", "/v1/lists", {"name": "readers", "addresses": addresses(n)})
    assert listed.status_code == 201 and listed.json()["size"] == n, listed.text
    email_id, list_id = created.json()["id"], listed.json()["id"]
    started = time.perf_counter()
    sent = client.request("POST", f"/v1/emails/{email_id}/send", {"list_id": list_id})
    assert sent.status_code == 202, sent.text
    assert sent.json()["recipients"] == n
    assert sent.json()["jobs"] == -(-n // pipeline.config.batch_size)
    pipeline.drain(timeout)
    return Run(email_id, list_id, sent.json()["jobs"], time.perf_counter() - started)


def stored(sinks: tuple[SinkServer, ...], email_id: int) -> tuple[Counter[str], dict[str, str]]:
    """Copies of each key of `email_id` over all sinks, and the sink that stored each;
    checks on the way that no address got two messages of the email, whatever the key."""
    copies: Counter[str] = Counter()
    where: dict[str, str] = {}
    per_address: Counter[str] = Counter()
    prefix = f"send:{email_id}:"
    for sink in sinks:
        for message in sink.received():
            if message.key.startswith(prefix):
                copies[message.key] += 1
                where[message.key] = message.provider
                per_address[message.recipient] += 1
    assert not [a for a, count in per_address.items() if count > 1], "an address got two"
    return copies, where


def no_job_failed(pipeline: Pipeline) -> None:
    queue = pipeline.queue
    if isinstance(queue, RqQueue):
        assert queue.failed() == 0 and queue.backlog() == 0
    else:
        assert isinstance(queue, ThreadQueue) and queue.failures == []


def check_every_recipient(
    pipeline: Pipeline, run: Run, sinks: tuple[SinkServer, ...], n: int
) -> Counter[str]:
    """Recipient by recipient, the sinks, the ledger and the deliveries table agree:
    sent (stored once, by the provider on record), rejected (stored never) or unknown
    (stored at most once, and listed by the ledger); nothing else. Returns the states."""
    copies, where = stored(sinks, run.email_id)
    rows = pipeline.records.deliveries(run.email_id)
    assert len(rows) == n
    ledger = pipeline.parts.ledger
    listed = {entry.key for entry in ledger.unknowns(limit=n)}
    states: Counter[str] = Counter()
    stored_unknown = 0
    for row in rows:
        key = f"send:{run.email_id}:{row.recipient_id}"
        entry = ledger.get(key)
        assert entry is not None, row
        states[row.state.value] += 1
        if row.state is S.SENT or row.state is S.REJECTED:
            recorded = json.loads(entry.result or "null")
            assert entry.state is EntryState.COMPLETED, (row, entry)
            assert recorded["outcome"] == row.state.value, (row, entry)
            assert recorded["provider"] == row.provider, (row, entry)
            if row.state is S.SENT:
                assert copies[key] == 1 and where[key] == row.provider, row
            else:
                assert copies[key] == 0, row
        else:  # nothing is left queued, sending or deferred
            assert row.state is S.UNKNOWN, row
            assert entry.state is EntryState.UNKNOWN and key in listed, (row, entry)
            assert copies[key] <= 1, row
            stored_unknown += copies[key]
    assert len(listed) == states["unknown"]
    assert states["sent"] + states["rejected"] + states["unknown"] == n
    assert sum(copies.values()) == states["sent"] + stored_unknown
    report = pipeline.report(run.email_id, sinks)
    assert report.duplicates == 0 and report.sent_not_received == 0
    no_job_failed(pipeline)
    return states


def check_nothing_more_is_sent(
    pipeline: Pipeline, client: AsgiClient, run: Run, sinks: tuple[SinkServer, ...]
) -> None:
    """The API sends the email again: nothing is queued. Then every recipient's job is
    replayed straight onto the queue (an operator retrying everything): the ledger lets
    nothing through, and every row keeps its state and provider."""
    before = [len(s.received()) for s in sinks]
    rows = pipeline.records.deliveries(run.email_id)
    outcomes = [(row.recipient_id, row.state, row.provider) for row in rows]
    again = client.request("POST", f"/v1/emails/{run.email_id}/send", {"list_id": run.list_id})
    assert again.status_code == 202, again.text
    assert (again.json()["recipients"], again.json()["jobs"]) == (0, 0)
    ids = [row.recipient_id for row in rows]
    size = pipeline.config.batch_size
    duplicates = pipeline.parts.deliverer.stats()["duplicate"]
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    assert pipeline.queue.enqueue_batches(run.email_id, batches) == run.jobs
    pipeline.drain(60)
    assert pipeline.parts.deliverer.stats()["duplicate"] - duplicates == len(ids)
    assert [len(s.received()) for s in sinks] == before
    rows = pipeline.records.deliveries(run.email_id)
    assert [(row.recipient_id, row.state, row.provider) for row in rows] == outcomes


def check_faults_and_failover(
    pipeline: Pipeline,
    run: Run,
    sinks: tuple[SinkServer, SinkServer],
    outage: Outage,
    planned: Mapping[int, Fault],
    *,
    failback: bool,
) -> None:
    """The `planned` faults (list index: the primary's fault for its first message) ended
    as they must; the backup took over during the outage (and, if `failback`, the primary
    took traffic again once it was back); every row names the provider that answered."""
    primary, backup = sinks
    rows = {row.address: row for row in pipeline.records.deliveries(run.email_id)}
    copies, _ = stored(sinks, run.email_id)
    listed = addresses(max(planned) + 1)
    for index, fault in planned.items():
        row = rows[listed[index]]
        key = f"send:{run.email_id}:{row.recipient_id}"
        assert row.provider == "primary", row
        if fault is Fault.PERMANENT:  # 5xx: rejected, never stored, never retried
            assert (row.state, copies[key]) == (S.REJECTED, 0), row
        elif fault is Fault.DROP_AFTER_DATA:  # stored, but the sender never heard back
            assert (row.state, copies[key]) == (S.UNKNOWN, 1), row
        else:  # a HANG: the body went out and no answer came (nor, here, a copy)
            assert fault is Fault.HANG and (row.state, copies[key]) == (S.UNKNOWN, 0), row
    assert all(row.provider for row in rows.values())
    assert outage.went_down_at is not None and outage.came_back_at is not None
    assert len(backup.received()) >= outage.up_after
    if failback:
        assert len(primary.received()) > outage.came_back_at


def check_analytics(pipeline: Pipeline, client: AsgiClient, run: Run, states: Counter[str]) -> None:
    """One run of the analytics cron job; the API then serves what the rows say."""
    pipeline.refresh_analytics()
    figures = client.request("GET", f"/v1/emails/{run.email_id}/analytics")
    assert figures.status_code == 200, figures.text
    assert {k: v for k, v in figures.json()["states"].items() if v} == dict(states)
