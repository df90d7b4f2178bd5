"""Telemetry events emitted by retriers, transports and pollers (only on the failure path)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sendguard._core.telemetry import Event

__all__ = ["BudgetExhausted", "GaveUp", "RetryScheduled"]


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    """A call will be tried again after `delay` seconds.

    `reason` is what failed, as a short bounded name: ``status_503``, ``connect_error``,
    ``attempt_timeout``, an exception class name, or ``not_ready`` for a poll.
    """

    kind: ClassVar[str] = "sendguard.backoff.retries"
    attributes: ClassVar[tuple[str, ...]] = ("client", "reason")
    client: str
    reason: str
    attempt: int
    """The attempt that failed (1 for the first)."""
    delay: float
    retry_after: float | None
    """What the server asked for (Retry-After or RateLimit ``t``), if anything."""


@dataclass(frozen=True, slots=True)
class BudgetExhausted(Event):
    """A retry was not made because the retry budget of `key` (a host, or "") was empty."""

    kind: ClassVar[str] = "sendguard.backoff.budget_exhausted"
    attributes: ClassVar[tuple[str, ...]] = ("client",)
    client: str
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class GaveUp(Event):
    """A call stopped retrying and returned or raised its last outcome.

    `why` is ``attempts``, ``deadline``, ``budget`` or ``stop`` (a tenacity stop said so).
    """

    kind: ClassVar[str] = "sendguard.backoff.gave_up"
    attributes: ClassVar[tuple[str, ...]] = ("client", "why")
    client: str
    why: str
    attempts: int
    reason: str
    elapsed: float
