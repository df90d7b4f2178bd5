"""Telemetry events emitted by the health registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sendguard._core.telemetry import Event

__all__ = ["ProbeChecked", "ProbeStatusChanged"]


@dataclass(frozen=True, slots=True)
class ProbeChecked(Event):
    """A probe finished a check (or was given up on at its timeout)."""

    kind: ClassVar[str] = "sendguard.health.checks"
    attributes: ClassVar[tuple[str, ...]] = ("probe", "status")
    probe: str
    status: str
    critical: bool
    duration: float
    message: str


@dataclass(frozen=True, slots=True)
class ProbeStatusChanged(Event):
    """A probe's status changed (pass -> fail, fail -> pass, ...): worth a log line."""

    kind: ClassVar[str] = "sendguard.health.transitions"
    attributes: ClassVar[tuple[str, ...]] = ("probe", "from_status", "to_status")
    probe: str
    from_status: str
    to_status: str
    message: str
