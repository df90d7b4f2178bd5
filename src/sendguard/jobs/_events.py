"""Telemetry events of `sendguard.jobs`: rejections, ledger decisions, heartbeats.

Per-enqueue sizes are not events (that would cost every enqueue): `PayloadGuard` keeps
counters per queue and function and reports them through observable instruments
(``sendguard.jobs.payload.checked``, ``.bytes``, ``.largest``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sendguard._core.telemetry import Event

__all__ = [
    "HeartbeatRecorded",
    "LedgerDecision",
    "LedgerTransition",
    "PayloadNearBudget",
    "PayloadRefused",
]


@dataclass(frozen=True, slots=True)
class PayloadRefused(Event):
    """A payload was rejected at enqueue (or would have been, with ``enforce=False``)."""

    kind: ClassVar[str] = "sendguard.jobs.payload.rejections"
    attributes: ClassVar[tuple[str, ...]] = ("queue", "function", "violation", "enforced")
    queue: str
    function: str
    violation: str
    enforced: bool
    path: str
    size: int
    budget: int | None


@dataclass(frozen=True, slots=True)
class PayloadNearBudget(Event):
    """A payload passed, but is over its policy's warning threshold."""

    kind: ClassVar[str] = "sendguard.jobs.payload.warnings"
    attributes: ClassVar[tuple[str, ...]] = ("queue", "function")
    queue: str
    function: str
    size: int
    warn_bytes: int
    budget: int


@dataclass(frozen=True, slots=True)
class LedgerDecision(Event):
    """What the ledger said when a call asked to run: started, replayed, or refused."""

    kind: ClassVar[str] = "sendguard.jobs.ledger.decisions"
    attributes: ClassVar[tuple[str, ...]] = ("ledger", "decision")
    ledger: str
    decision: str
    """`started`, `replayed`, `in_progress`, `unknown`, `mismatch` or `store_down`."""
    key: str


@dataclass(frozen=True, slots=True)
class LedgerTransition(Event):
    """A ledger entry changed state (a call finished, or an operator resolved it)."""

    kind: ClassVar[str] = "sendguard.jobs.ledger.transitions"
    attributes: ClassVar[tuple[str, ...]] = ("ledger", "from_state", "to_state")
    ledger: str
    from_state: str
    to_state: str
    key: str
    detail: str


@dataclass(frozen=True, slots=True)
class HeartbeatRecorded(Event):
    """A cron job started, succeeded or failed (`duration` is None for a start)."""

    kind: ClassVar[str] = "sendguard.jobs.heartbeats"
    attributes: ClassVar[tuple[str, ...]] = ("job", "outcome")
    job: str
    outcome: str
    """`started`, `succeeded` or `failed`."""
    duration: float | None
    error: str
