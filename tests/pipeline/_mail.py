"""Helpers of the delivery tests (sinks, smtp, delivery): messages and providers."""

from __future__ import annotations

from sendguard.pipeline.delivery import OutboundMessage
from sendguard.pipeline.sinks import SinkServer
from sendguard.pipeline.smtp import SmtpProvider

SENDER = "news@sendguard.test"


def message(key: str, recipient: str | None = None, body: str = "Hello.\n") -> OutboundMessage:
    """A message with key `key`, to `recipient` (default: an address made from the key)."""
    if recipient is None:
        recipient = key.replace(":", "-") + "@example.com"
    return OutboundMessage(key, SENDER, recipient, f"Issue {key}", body)


def provider_for(sink: SinkServer, *, timeout: float = 2.0, max_sessions: int = 1) -> SmtpProvider:
    """An `SmtpProvider` named like `sink`, pointed at it."""
    return SmtpProvider(sink.name, sink.host, sink.port, timeout=timeout, max_sessions=max_sessions)
