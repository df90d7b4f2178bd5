"""Telemetry events of the `Guard` (requests refused by a limit, a breaker or a bulkhead)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sendguard._core.telemetry import Event

__all__ = ["RequestRefused"]


@dataclass(frozen=True, slots=True)
class RequestRefused(Event):
    """A request was refused: `reason` is RateLimited, BreakerOpen or BulkheadFull."""

    kind: ClassVar[str] = "sendguard.guard.refusals"
    attributes: ClassVar[tuple[str, ...]] = ("route", "reason")
    route: str
    reason: str
