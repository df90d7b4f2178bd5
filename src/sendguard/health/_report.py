"""Health aggregation: cached probe results in, one verdict and an ``application/health+json``
document out. Pure: the caller passes the monotonic clock's reading.

The rules:

- a check with no result yet fails ("not checked yet"): a process is not ready until it
  has looked at its dependencies;
- a result older than its maximum age fails ("stale"): a refresher that died must not
  leave the last good answer standing;
- the overall status is the worst of the critical checks; a non-critical check that
  fails or warns makes it ``warn`` at most (it is reported, and alerts can fire on it, but
  it never takes the instance out of a load balancer);
- ``fail`` answers HTTP 503; ``pass`` and ``warn`` answer 200 (the draft's mapping).
"""

from __future__ import annotations

import json
import time as _time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sendguard.health._result import Detail, ProbeResult, Status

__all__ = [
    "CONTENT_TYPE",
    "CheckReport",
    "CheckState",
    "HealthReport",
    "aggregate",
    "format_time",
    "is_stale",
    "liveness_report",
]

CONTENT_TYPE = "application/health+json"


@dataclass(frozen=True, slots=True)
class CheckState:
    """What the registry holds for one probe: its settings and its latest result."""

    name: str
    critical: bool
    max_age: float
    result: ProbeResult | None
    component_type: str = "component"


@dataclass(frozen=True, slots=True)
class CheckReport:
    """One check as it stands now: its status after the staleness rule, and why."""

    name: str
    critical: bool
    status: Status
    message: str
    stale: bool
    result: ProbeResult | None
    component_type: str = "component"

    @property
    def key(self) -> str:
        """The draft's check key, ``<component>:<measurement>``."""
        measurement = self.result.measurement if self.result else "status"
        return f"{self.name}:{measurement}"

    def to_dict(self) -> dict[str, Any]:
        """This check as one object of the draft's ``checks`` map."""
        out: dict[str, Any] = {"componentType": self.component_type}
        result = self.result
        if result is not None and result.observed_value is not None:
            out["observedValue"] = result.observed_value
            if result.observed_unit:
                out["observedUnit"] = result.observed_unit
        out["status"] = self.status.value
        if result is not None and result.time:
            out["time"] = format_time(result.time)
        if self.status is not Status.PASS and self.message:
            out["output"] = self.message
        out["critical"] = self.critical
        if result is not None:
            out["durationMs"] = round(result.duration * 1000, 3)
            if result.details:
                out["details"] = dict(result.details)
        return out


def format_time(epoch: float) -> str:
    """``2026-03-31T09:14:05.120Z`` for an epoch time (UTC, milliseconds)."""
    whole = int(epoch)
    millis = min(999, round((epoch - whole) * 1000))
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(whole)) + f".{millis:03d}Z"


def is_stale(state: CheckState, now: float) -> bool:
    """Whether `state`'s result is older than its maximum age (no result is not stale)."""
    return state.result is not None and state.result.age(now) > state.max_age


def _judge(state: CheckState, now: float) -> CheckReport:
    result = state.result
    if result is None:
        status, message, stale = Status.FAIL, "not checked yet", False
    elif is_stale(state, now):
        status, stale = Status.FAIL, True
        message = (
            f"stale: the last result is {result.age(now):.1f}s old (max age "
            f"{state.max_age:g}s), so the refresher is not keeping up; it said "
            f"{result.status.value}" + (f": {result.message}" if result.message else "")
        )
    else:
        status, message, stale = result.status, result.message, False
    return CheckReport(
        state.name, state.critical, status, message, stale, result, state.component_type
    )


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The verdict over a set of checks, and its ``application/health+json`` form."""

    status: Status
    checks: tuple[CheckReport, ...]
    description: str = ""

    @property
    def http_status(self) -> int:
        """503 when the status is fail, else 200."""
        return 503 if self.status is Status.FAIL else 200

    @property
    def problems(self) -> tuple[CheckReport, ...]:
        """Checks that warn or fail, critical failures first."""
        bad = [c for c in self.checks if c.status is not Status.PASS]
        return tuple(sorted(bad, key=lambda c: (not c.critical, -c.status.severity, c.name)))

    def check(self, name: str) -> CheckReport:
        """The check of the probe called `name` (KeyError naming the known ones)."""
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(f"no check {name!r}; checks: {', '.join(c.name for c in self.checks)}")

    def summary(self) -> str:
        """One line naming the cause: ``fail: postgres: connection slots exhausted (...)``."""
        problems = self.problems
        if not problems:
            return f"{self.status.value}: all {len(self.checks)} checks pass"
        parts = [f"{c.name}: {c.message or c.status.value}" for c in problems]
        return f"{self.status.value}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The report in the IETF health-check draft's format."""
        out: dict[str, Any] = {"status": self.status.value}
        if self.description:
            out["description"] = self.description
        if self.status is not Status.PASS:
            out["output"] = self.summary()
        if self.checks:
            out["checks"] = {c.key: [c.to_dict()] for c in self.checks}
        return out

    def to_json(self) -> bytes:
        """`to_dict` as compact UTF-8 JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=_json_default).encode()


def _json_default(value: object) -> Detail:
    return str(value)


def aggregate(states: Iterable[CheckState], now: float, *, description: str = "") -> HealthReport:
    """Judge every check at monotonic time `now` and combine them (see the module doc)."""
    checks = tuple(_judge(state, now) for state in states)
    overall = Status.worst(
        c.status if c.critical else min(c.status, Status.WARN, key=lambda s: s.severity)
        for c in checks
    )
    return HealthReport(overall, checks, description)


def liveness_report(description: str = "") -> HealthReport:
    """The liveness answer: the process runs and serves (no dependency is consulted)."""
    return HealthReport(Status.PASS, (), description)
