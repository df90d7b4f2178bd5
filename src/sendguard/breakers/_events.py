"""Telemetry events emitted by breakers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sendguard._core.telemetry import Event

__all__ = ["BreakerRejected", "BreakerTransition"]


@dataclass(frozen=True, slots=True)
class BreakerTransition(Event):
    """A breaker changed state (as this process saw it)."""

    kind: ClassVar[str] = "sendguard.breaker.transitions"
    attributes: ClassVar[tuple[str, ...]] = ("breaker", "from_state", "to_state", "reason")
    breaker: str
    from_state: str
    to_state: str
    reason: str


@dataclass(frozen=True, slots=True)
class BreakerRejected(Event):
    """A breaker refused a call."""

    kind: ClassVar[str] = "sendguard.breaker.rejections"
    attributes: ClassVar[tuple[str, ...]] = ("breaker", "state")
    breaker: str
    state: str
    retry_after: float
