"""The worker: `send_batch(email_id, recipient_ids)`, the pipeline's one job function.

A job carries ids only. `BatchSender.send_batch` loads the email and the recipients'
addresses, moves their delivery rows from ``queued`` to ``sending``, hands one
`OutboundMessage` per recipient (key ``send:{email_id}:{recipient_id}``) to the
`Deliverer`, and mirrors each `DeliveryResult` into the rows: ``sent``, ``rejected``,
``unknown`` or ``deferred``. A duplicate (the ledger says the message was handled
already) writes what the ledger recorded, or leaves the row alone. Deferred messages are
known not sent: they are enqueued again after ``defer_delay`` seconds (doubling), at most
``max_rounds`` times; after that they stay ``deferred`` until the email is sent again.

Which `BatchSender` runs a job: the one `bind` registered for the job's queue (a running
`Pipeline` binds its own, so in-process RQ workers and worker threads use its objects),
else, in an RQ worker process, one built once from `PipelineConfig.from_env()`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sendguard import SYSTEM_CLOCK, Breaker, BreakerRegistry, Clock, StoreUnavailable
from sendguard.backoff import RetryPolicy
from sendguard.jobs import EntryState, Ledger
from sendguard.pipeline.config import PipelineConfig
from sendguard.pipeline.delivery import Deliverer, DeliveryResult, OutboundMessage, Outcome
from sendguard.pipeline.jobqueue import JobQueue
from sendguard.pipeline.records import DeliveryState, Records
from sendguard.pipeline.smtp import SmtpProvider
from sendguard.ratelimit import Pacer

__all__ = ["BatchSender", "DeliveryParts", "bind", "build_delivery", "send_batch", "unbind"]

LEDGER_NAME = "pipeline-sends"
_FLUSH_EVERY = 50
_log = logging.getLogger("sendguard.pipeline")
_STATES = {
    Outcome.SENT: DeliveryState.SENT,
    Outcome.REJECTED: DeliveryState.REJECTED,
    Outcome.UNKNOWN: DeliveryState.UNKNOWN,
    Outcome.DEFERRED: DeliveryState.DEFERRED,
}


@dataclass
class DeliveryParts:
    """The sending side built from a configuration: ledger, breakers, pacer, Deliverer."""

    ledger: Ledger
    breakers: BreakerRegistry
    pacer: Pacer
    deliverer: Deliverer

    def close(self) -> None:
        """Close SMTP sessions and store connections."""
        self.deliverer.close()
        self.pacer.close()
        self.ledger.close()


def build_delivery(config: PipelineConfig, *, clock: Clock = SYSTEM_CLOCK) -> DeliveryParts:
    """Ledger, provider breakers and domain pacing on Redis when configured (else in
    memory), and a `Deliverer` over the configured providers in failover order."""
    store = config.redis_url
    ledger = Ledger(store, name=LEDGER_NAME, clock=clock)
    breakers = BreakerRegistry(
        Breaker.consecutive(config.breaker_failures, open_for=config.breaker_open_for),
        store=store,
        clock=clock,
    )
    pacer = Pacer(
        config.pace,
        burst=config.pace_burst,
        store=store,
        max_wait=config.pace_max_wait,
        scope="pipeline-domains",
        clock=clock,
    )
    providers = [
        SmtpProvider(p.name, p.host, p.port, timeout=p.timeout, max_sessions=p.sessions)
        for p in config.providers
    ]
    retry = RetryPolicy(
        attempts=config.retry_attempts, base=config.retry_base, cap=config.retry_cap
    )
    deliverer = Deliverer(
        providers, ledger=ledger, breakers=breakers, pacer=pacer, retry=retry, clock=clock
    )
    return DeliveryParts(ledger, breakers, pacer, deliverer)


@dataclass
class BatchSender:
    """Runs batch jobs against `records` through `deliverer` (see the module doc)."""

    config: PipelineConfig
    records: Records
    deliverer: Deliverer
    queue: JobQueue | None = None
    """Where deferred messages are enqueued again (None: they stay deferred)."""
    counts: Counter[str] = field(default_factory=Counter)
    """Outcomes so far in this process, by `Outcome` value (``invalid`` too)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send_batch(
        self, email_id: int, recipient_ids: Sequence[int], retry_round: int = 0
    ) -> dict[str, int]:
        """Send `email_id` to `recipient_ids`; returns this batch's outcome counts."""
        email = self.records.email(email_id)
        if email is None:
            _log.warning("send_batch: no email %s; %d ids dropped", email_id, len(recipient_ids))
            return {"missing": len(recipient_ids)}
        addresses = self.records.recipients(recipient_ids)
        self.records.mark(
            email_id,
            list(addresses),
            DeliveryState.SENDING,
            only_from=(DeliveryState.QUEUED, DeliveryState.DEFERRED),
        )
        counts: Counter[str] = Counter()
        pending: list[tuple[int, DeliveryState, str | None, str]] = []
        deferred: list[int] = []
        try:  # outcomes reached are written even if the batch stops half-way
            for recipient_id, address in addresses.items():
                try:
                    message = OutboundMessage(
                        key=f"send:{email_id}:{recipient_id}",
                        sender=self.config.sender,
                        recipient=address,
                        subject=email.subject,
                        body=email.body,
                    )
                except ValueError as error:  # never sendable: say so instead of retrying
                    counts["invalid"] += 1
                    pending.append(
                        (recipient_id, DeliveryState.REJECTED, None, f"invalid: {error}")
                    )
                    continue
                result = self.deliverer.deliver(message)
                counts[result.outcome.value] += 1
                row = self._row(recipient_id, result)
                if row is not None:
                    pending.append(row)
                if result.outcome is Outcome.DEFERRED:
                    deferred.append(recipient_id)
                if len(pending) >= _FLUSH_EVERY:
                    self.records.record(email_id, pending)
                    pending = []
        finally:
            self.records.record(email_id, pending)
        if deferred and self.queue is not None and retry_round < self.config.max_rounds:
            delay = self.config.defer_delay * 2**retry_round
            self.queue.enqueue(email_id, deferred, retry_round=retry_round + 1, delay=delay)
            counts["requeued"] += len(deferred)
        with self._lock:
            self.counts.update(counts)
        return dict(counts)

    def reconcile(self, email_id: int) -> dict[str, int]:
        """Follow the ledger for `email_id`'s unknown messages once an operator resolved
        them (``sendguard jobs resolve``): resolved as sent, the row says ``sent``;
        resolved as not sent, ``deferred``, so the next send of the email takes it."""
        changes: list[tuple[int, DeliveryState, str | None, str]] = []
        for row in self.records.deliveries(email_id, (DeliveryState.UNKNOWN,)):
            entry = self.deliverer.ledger.get(f"send:{email_id}:{row.recipient_id}")
            if entry is not None and entry.state is EntryState.COMPLETED:
                changes.append((row.recipient_id, DeliveryState.SENT, row.provider, entry.detail))
            elif entry is not None and entry.state is EntryState.FAILED:
                changes.append((row.recipient_id, DeliveryState.DEFERRED, None, entry.detail))
        self.records.record(email_id, changes)
        return dict(Counter(state.value for _, state, _, _ in changes))

    def _row(
        self, recipient_id: int, result: DeliveryResult
    ) -> tuple[int, DeliveryState, str | None, str] | None:
        """The delivery row a result means; for a duplicate, what the ledger recorded."""
        state = _STATES.get(result.outcome)
        if state is not None:
            return recipient_id, state, result.provider, result.detail
        try:
            entry = self.deliverer.ledger.get(result.key)
        except StoreUnavailable:
            return None
        if entry is None:
            return None
        if entry.state is EntryState.UNKNOWN:
            return recipient_id, DeliveryState.UNKNOWN, result.provider, entry.detail
        if entry.state is EntryState.COMPLETED:
            recorded = json.loads(entry.result) if entry.result else None
            if isinstance(recorded, dict) and recorded.get("outcome") in ("sent", "rejected"):
                provider = recorded.get("provider")
                return (
                    recipient_id,
                    DeliveryState(recorded["outcome"]),
                    provider if isinstance(provider, str) else None,
                    result.detail,
                )
            return recipient_id, DeliveryState.SENT, None, "resolved as sent by an operator"
        return None  # in progress elsewhere: that attempt writes its own outcome


# --- which sender runs a job ----------------------------------------------------------

_bound: dict[str, BatchSender] = {}
_bound_lock = threading.Lock()
_from_env: BatchSender | None = None


def bind(queue_name: str, sender: BatchSender) -> None:
    """Run the jobs of `queue_name` in this process with `sender` (a running Pipeline)."""
    with _bound_lock:
        _bound[queue_name] = sender


def unbind(queue_name: str, sender: BatchSender) -> None:
    """Undo `bind` (only if `sender` is still the one bound)."""
    with _bound_lock:
        if _bound.get(queue_name) is sender:
            del _bound[queue_name]


def _sender_for_job() -> BatchSender:
    global _from_env
    from rq import get_current_job

    job = get_current_job()
    with _bound_lock:
        if job is not None and job.origin in _bound:
            return _bound[job.origin]
        if job is None and len(_bound) == 1:
            return next(iter(_bound.values()))
        if _from_env is None:
            from sendguard.pipeline.jobqueue import RqQueue

            config = PipelineConfig.from_env()
            records = Records.open(config)
            parts = build_delivery(config)
            queue = RqQueue(config.redis_url, config.queue_name) if config.redis_url else None
            _from_env = BatchSender(config, records, parts.deliverer, queue)
        return _from_env


def send_batch(email_id: int, recipient_ids: list[int], retry_round: int = 0) -> dict[str, int]:
    """The RQ job function: send `email_id` to `recipient_ids` (see the module doc)."""
    return _sender_for_job().send_batch(email_id, recipient_ids, retry_round)
