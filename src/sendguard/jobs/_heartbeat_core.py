"""Cron heartbeats without I/O: what a job's record holds and how late or failing it is.

A job is expected to run, and succeed, every `every` seconds. Its status:

- ``stalled``: no run has finished for more than `every + grace` (counting from when it
  was first seen if none ever did): the dead man's switch, what pages someone when the
  scheduler itself is down;
- ``failing``: runs finish, but the last one failed;
- ``late``: its last success is more than `every` ago (within the grace);
- ``ok``: it succeeded within `every`.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from sendguard._core.durations import format_duration, parse_duration
from sendguard._core.errors import ConfigError

__all__ = ["CronState", "CronStatus", "HeartbeatRecord", "assess", "schedule_seconds"]


class CronState(enum.Enum):
    """How a cron job stands (see the module doc)."""

    OK = "ok"
    LATE = "late"
    FAILING = "failing"
    STALLED = "stalled"

    @property
    def problem(self) -> bool:
        """True for the states that should page someone (stalled, failing)."""
        return self in (CronState.STALLED, CronState.FAILING)


@dataclass(frozen=True, slots=True)
class HeartbeatRecord:
    """What the store holds for one job (times are epoch seconds)."""

    name: str
    every: float
    grace: float
    first_seen: float
    started_at: float | None = None
    succeeded_at: float | None = None
    failed_at: float | None = None
    duration: float | None = None
    """Seconds the last finished run took."""
    error: str = ""
    """The last failure's error (cleared by a success)."""
    failures: int = 0
    """Failed runs in a row."""
    runs: int = 0

    @property
    def running(self) -> bool:
        """A run has started and not finished."""
        last_end = max(self.succeeded_at or -math.inf, self.failed_at or -math.inf)
        return self.started_at is not None and self.started_at > last_end


@dataclass(frozen=True, slots=True)
class CronStatus:
    """One job's standing at `now`: its state, how long since it last succeeded, why."""

    name: str
    state: CronState
    since_success: float
    """Seconds since the last success (or since first seen, if it never succeeded)."""
    overdue: float
    """Seconds past `every + grace` since the last finished run (0 unless stalled)."""
    message: str
    record: HeartbeatRecord


def schedule_seconds(name: str, value: float | str) -> float:
    """A period or grace as seconds: a number, or text like ``5m`` / ``1h30m``."""
    if isinstance(value, str):
        return parse_duration(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"heartbeat {name} must be positive seconds or a duration, got {value!r}")
    return float(value)


def assess(record: HeartbeatRecord, now: float) -> CronStatus:
    """Judge `record` at `now` (epoch seconds)."""
    ends = [t for t in (record.succeeded_at, record.failed_at) if t is not None]
    quiet = max(0.0, now - max(ends, default=record.first_seen))
    anchor = record.succeeded_at if record.succeeded_at is not None else record.first_seen
    age = max(0.0, now - anchor)
    limit = record.every + record.grace
    expected = f"expected every {format_duration(record.every)}"
    failing = ""
    if record.failures:
        failing = f"last run failed ({record.failures} in a row): {record.error}"
    running = ""
    if record.running and record.started_at is not None:
        running = f"; a run started {format_duration(max(0.0, now - record.started_at))} ago"
    if quiet > limit:
        state = CronState.STALLED
        what = "no run finished" if ends else "no run finished since first seen"
        message = f"{what} for {format_duration(quiet)} ({expected}, +"
        message += f"{format_duration(record.grace)} grace){running}"
    elif record.failures:
        state, message = CronState.FAILING, failing + running
    elif age > record.every:
        what = "no success" if record.succeeded_at is not None else "never succeeded"
        state, message = CronState.LATE, f"{what} for {format_duration(age)} ({expected}){running}"
    else:
        state, message = CronState.OK, ""
    return CronStatus(record.name, state, age, max(0.0, quiet - limit), message, record)
