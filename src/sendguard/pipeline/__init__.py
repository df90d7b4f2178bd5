"""The reference newsletter-sending pipeline, built from sendguard's public API.

    from sendguard.pipeline import FaultPlan, Pipeline, PipelineConfig, ProviderConfig, SinkServer

    with SinkServer("primary") as primary, SinkServer("backup") as backup:
        config = PipelineConfig(providers=(
            ProviderConfig("primary", primary.host, primary.port),
            ProviderConfig("backup", backup.host, backup.port),
        ))                                     # + redis_url=..., postgres_dsn=... to share
        with Pipeline(config) as pipeline:
            email = pipeline.create_email("Spring news", "Hello!")
            readers = pipeline.create_list("readers", 200)
            pipeline.send(email.id, readers.id)        # or POST /v1/emails/{id}/send
            pipeline.drain()
            print(pipeline.report(email.id, [primary, backup]).render())

The app half: `PipelineConfig`, `Records` (SQLite or Postgres), the queue (`RqQueue` with
the lean-payload guard, or `ThreadQueue`), the worker (`send_batch`, ids only), the
analytics cron job (`AnalyticsCron`, with a heartbeat), the guarded Starlette API
(`create_app`) and `Pipeline`, which wires them; `run_demo` is ``sendguard demo``. The
delivery half: `Deliverer` (idempotency ledger, per-domain pacing, per-provider breakers
with failover, budgeted retries), `SmtpProvider` (smtplib) and the aiosmtpd
`SinkServer` with its `FaultPlan`.

Names are imported on first use, so importing this package loads neither Starlette, RQ,
psycopg nor aiosmtpd (install them with ``sendguard[pipeline]``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sendguard.pipeline.analytics import AnalyticsCron
    from sendguard.pipeline.api import QueuedSend, build_guard, build_health, create_app
    from sendguard.pipeline.app import Pipeline, PipelineReport
    from sendguard.pipeline.config import PipelineConfig, ProviderConfig
    from sendguard.pipeline.delivery import Deliverer, DeliveryResult, OutboundMessage, Outcome
    from sendguard.pipeline.demo import run_demo
    from sendguard.pipeline.faults import Fault, FaultPlan
    from sendguard.pipeline.jobqueue import JobQueue, PipelineJob, RqQueue, ThreadQueue
    from sendguard.pipeline.records import (
        Analytics,
        Delivery,
        DeliveryState,
        Email,
        MailingList,
        Records,
    )
    from sendguard.pipeline.sinks import ReceivedMessage, SinkServer
    from sendguard.pipeline.smtp import (
        SmtpError,
        SmtpPermanent,
        SmtpProvider,
        SmtpTransient,
        SmtpUnknown,
    )
    from sendguard.pipeline.worker import BatchSender, send_batch

_WHERE = {
    "AnalyticsCron": "analytics",
    "QueuedSend": "api",
    "build_guard": "api",
    "build_health": "api",
    "create_app": "api",
    "Pipeline": "app",
    "PipelineReport": "app",
    "PipelineConfig": "config",
    "ProviderConfig": "config",
    "Deliverer": "delivery",
    "DeliveryResult": "delivery",
    "OutboundMessage": "delivery",
    "Outcome": "delivery",
    "run_demo": "demo",
    "Fault": "faults",
    "FaultPlan": "faults",
    "JobQueue": "jobqueue",
    "PipelineJob": "jobqueue",
    "RqQueue": "jobqueue",
    "ThreadQueue": "jobqueue",
    "Analytics": "records",
    "Delivery": "records",
    "DeliveryState": "records",
    "Email": "records",
    "MailingList": "records",
    "Records": "records",
    "ReceivedMessage": "sinks",
    "SinkServer": "sinks",
    "SmtpError": "smtp",
    "SmtpPermanent": "smtp",
    "SmtpProvider": "smtp",
    "SmtpTransient": "smtp",
    "SmtpUnknown": "smtp",
    "BatchSender": "worker",
    "send_batch": "worker",
}

__all__ = [
    "Analytics",
    "AnalyticsCron",
    "BatchSender",
    "Deliverer",
    "Delivery",
    "DeliveryResult",
    "DeliveryState",
    "Email",
    "Fault",
    "FaultPlan",
    "JobQueue",
    "MailingList",
    "OutboundMessage",
    "Outcome",
    "Pipeline",
    "PipelineConfig",
    "PipelineJob",
    "PipelineReport",
    "ProviderConfig",
    "QueuedSend",
    "ReceivedMessage",
    "Records",
    "RqQueue",
    "SinkServer",
    "SmtpError",
    "SmtpPermanent",
    "SmtpProvider",
    "SmtpTransient",
    "SmtpUnknown",
    "ThreadQueue",
    "build_guard",
    "build_health",
    "create_app",
    "run_demo",
    "send_batch",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'sendguard.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sendguard.pipeline.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
