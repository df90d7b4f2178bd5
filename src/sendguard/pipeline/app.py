"""`Pipeline`: the reference sending pipeline, wired from a `PipelineConfig`.

    with Pipeline(config) as pipeline:                 # start() ... close()
        email = pipeline.create_email("Spring news", "Hello!")
        readers = pipeline.create_list("readers", 200)  # or a list of addresses
        pipeline.send(email.id, readers.id)             # what POST /v1/emails/{id}/send does
        pipeline.drain()
        print(pipeline.report(email.id, sinks).render())

What it builds: `Records` (Postgres or SQLite); the sending side (`build_delivery`: the
idempotency ledger, a breaker per provider, a pacer per recipient domain, the SMTP
providers and the `Deliverer`), all on Redis when configured, else in memory; the queue
(RQ, or worker threads); the analytics cron job and its heartbeats; the health registry;
the guarded API (`pipeline.app`, an ASGI app; `serve()` runs it on uvicorn).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from sendguard import SYSTEM_CLOCK, Clock
from sendguard.jobs import Heartbeats
from sendguard.pipeline.analytics import AnalyticsCron
from sendguard.pipeline.api import (
    QueuedSend,
    build_guard,
    build_health,
    create_app,
    enqueue_send,
)
from sendguard.pipeline.config import PipelineConfig
from sendguard.pipeline.jobqueue import ThreadQueue, open_queue
from sendguard.pipeline.records import Delivery, DeliveryState, Email, MailingList, Records
from sendguard.pipeline.worker import BatchSender, bind, build_delivery, unbind

if TYPE_CHECKING:
    import uvicorn

    from sendguard.pipeline.sinks import SinkServer

__all__ = ["Pipeline", "PipelineReport"]

_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True)
class PipelineReport:
    """What happened to one email: rows per state, and what each sink stored."""

    email_id: int
    states: dict[str, int]
    received: dict[str, int] = field(default_factory=dict)
    """Messages of this email each sink stored, by sink name."""
    duplicates: int = 0
    """Extra copies stored across all sinks (a key stored twice counts 1): must be 0."""
    sent_not_received: int = 0
    """Rows marked sent whose key no sink stored: must be 0."""
    unknown: tuple[Delivery, ...] = ()
    rejected: tuple[Delivery, ...] = ()

    def render(self) -> str:
        """A short plain-text table."""
        lines = ["state      messages", "---------  --------"]
        for state in DeliveryState:
            lines.append(f"{state.value:<9}  {self.states.get(state.value, 0):>8,}")
        if self.received:
            lines += ["", "sink       received", "---------  --------"]
            lines += [f"{name:<9}  {count:>8,}" for name, count in self.received.items()]
        lines += ["", f"duplicates at the sinks: {self.duplicates}"]
        lines.append(f"marked sent but not received: {self.sent_not_received}")
        if self.unknown:
            lines.append(f"unknown outcome ({len(self.unknown)}), for an operator to resolve:")
            lines += [f"  {d.address} via {d.provider}: {d.detail}" for d in self.unknown]
        return "\n".join(lines)


class Pipeline:
    """Everything wired together (see the module doc). `start()` starts worker threads
    (no Redis), the analytics cron (`cron`, default: without Redis) and health checks.

    Args:
        config: what to run on.
        clock: for the records' timestamps and the guards' time (a `FakeClock` in tests).
        cron: run the analytics cron job on a thread of this process.
    """

    def __init__(
        self, config: PipelineConfig, *, clock: Clock = SYSTEM_CLOCK, cron: bool | None = None
    ) -> None:
        self.config = config
        self.run_cron = config.embedded if cron is None else cron
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._started = False
        with contextlib.ExitStack() as undo:
            self.records = Records.open(config, clock=clock)
            undo.callback(self.records.close)
            self.parts = build_delivery(config, clock=clock)
            undo.callback(self.parts.close)
            self.sender = BatchSender(config, self.records, self.parts.deliverer)
            self.queue = open_queue(config, self.sender.send_batch)
            undo.callback(self.queue.close)
            self.sender.queue = self.queue
            self.heartbeats = Heartbeats(config.redis_url, clock=clock)
            undo.callback(self.heartbeats.close)
            self.analytics = AnalyticsCron(
                self.records, self.heartbeats, every=config.analytics_every
            )
            self.health = build_health(config, self.records, self.queue, self.analytics)
            self.guard = build_guard(config)
            undo.callback(self.guard.close)
            self.app = create_app(config, self.records, self.queue, self.health, guard=self.guard)
            undo.pop_all()

    def __repr__(self) -> str:
        where = "embedded" if self.config.embedded else "redis"
        return f"Pipeline({where}, {self.records!r}, queue={self.config.queue_name!r})"

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> Pipeline:
        """Start workers (embedded), the analytics cron and the health checks."""
        if self._started:
            return self
        bind(self.config.queue_name, self.sender)
        if isinstance(self.queue, ThreadQueue):
            self.queue.start()
        if self.run_cron:
            self.analytics.start()
        self.health.start()
        self._started = True
        return self

    def close(self) -> None:
        """Stop everything and release every connection (safe to call twice)."""
        if self._server is not None:
            self._server.should_exit = True
            if self._server_thread is not None:
                self._server_thread.join(10)
            self._server = self._server_thread = None
        unbind(self.config.queue_name, self.sender)
        self.analytics.stop()
        self.health.close()
        self.queue.close()
        self.parts.close()
        self.guard.close()
        self.heartbeats.close()
        self.records.close()
        self._started = False

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the API on uvicorn from a thread; returns its base URL (port 0: any)."""
        import uvicorn

        if self._server is not None:
            raise RuntimeError("the API is already being served")
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it every answer on a kept-alive connection waited ~40 ms (Nagle).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        bound = listener.getsockname()[1]
        # Lifespan on: at shutdown the guard closes its connections on the server's loop.
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name="pipeline-api"
        )
        self._server_thread.start()
        while not self._server.started and self._server_thread.is_alive():
            self._server_thread.join(0.01)
        if not self._server.started:
            raise RuntimeError(f"uvicorn did not start on {host}:{bound}")
        return f"http://{host}:{bound}"

    # --- conveniences for tests, the demo and drills -------------------------------------

    def create_email(self, subject: str, body: str) -> Email:
        """Store an email (as ``POST /v1/emails`` does)."""
        return self.records.create_email(subject, body)

    def create_list(self, name: str, recipients: Iterable[str] | int) -> MailingList:
        """A list of the given addresses, or of that many generated ones over three domains."""
        if isinstance(recipients, int):
            recipients = [f"reader{n}@{_DOMAINS[n % len(_DOMAINS)]}" for n in range(recipients)]
        return self.records.create_list(name, recipients)

    def send(self, email_id: int, list_id: int) -> QueuedSend:
        """Queue the email for the list (as ``POST /v1/emails/{id}/send`` does)."""
        return enqueue_send(
            self.records, self.queue, email_id, list_id, batch_size=self.config.batch_size
        )

    def drain(self, timeout: float = 60.0) -> None:
        """Run or wait for every job, re-enqueued deferred ones included."""
        self.queue.drain(timeout)

    def reconcile(self, email_id: int) -> dict[str, int]:
        """Update unknown rows an operator resolved in the ledger (`BatchSender.reconcile`)."""
        return self.sender.reconcile(email_id)

    def refresh_analytics(self) -> int:
        """One run of the analytics cron job; how many emails it refreshed."""
        return self.analytics.refresh()

    def report(self, email_id: int, sinks: Sequence[SinkServer] = ()) -> PipelineReport:
        """Rows per state for `email_id`, and what `sinks` stored of it."""
        states = {s.value: n for s, n in self.records.state_counts(email_id).items()}
        prefix = f"send:{email_id}:"
        stored: Counter[str] = Counter()
        received: dict[str, int] = {}
        for sink in sinks:
            counts = Counter(
                {k: n for k, n in sink.counts_by_key().items() if k.startswith(prefix)}
            )
            received[sink.name] = sum(counts.values())
            stored.update(counts)
        rows = self.records.deliveries(email_id, (DeliveryState.SENT,)) if sinks else []
        missing = sum(1 for d in rows if stored[f"{prefix}{d.recipient_id}"] == 0)
        return PipelineReport(
            email_id,
            states,
            received,
            duplicates=sum(n - 1 for n in stored.values() if n > 1),
            sent_not_received=missing,
            unknown=tuple(self.records.deliveries(email_id, (DeliveryState.UNKNOWN,))),
            rejected=tuple(self.records.deliveries(email_id, (DeliveryState.REJECTED,))),
        )
