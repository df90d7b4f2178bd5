"""Breaker policy: an immutable value validated when it is built."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sendguard._core.errors import ConfigError

__all__ = ["Breaker", "Mode", "Outcome", "State", "Window"]


class Outcome(enum.Enum):
    """How one call is counted."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    """Neither resets nor dilutes the window (a cancelled call, a client error)."""


class State(enum.Enum):
    """What a breaker does with the next call."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"

    @property
    def rejects(self) -> bool:
        """True for the states that refuse calls (half-open refuses once its probes are out)."""
        return self in (State.OPEN, State.FORCED_OPEN)


class Mode(enum.Enum):
    """Whether the policy is enforced."""

    ENFORCE = "enforce"
    METRICS_ONLY = "metrics_only"
    """Count, transition and report as usual, but never refuse a call (a dry run)."""
    DISABLED = "disabled"
    """Pass every call through and record nothing."""


@dataclass(frozen=True, slots=True)
class Window:
    """The calls a rate is computed over: the last `size` calls, or the last `size` seconds.

    Time windows are kept in ten buckets, so they slide in steps of a tenth of their size.
    """

    kind: Literal["count", "time"]
    size: float

    def __post_init__(self) -> None:
        if self.kind not in ("count", "time"):
            raise ConfigError(f"Window.kind must be 'count' or 'time', got {self.kind!r}")
        if self.kind == "count" and (
            not float(self.size).is_integer() or not 1 <= self.size <= 100_000
        ):
            raise ConfigError(f"a count window holds 1 to 100000 calls, got {self.size!r}")
        if self.kind == "time" and not (math.isfinite(self.size) and 0.1 <= self.size <= 86_400):
            raise ConfigError(f"a time window lasts 0.1 to 86400 seconds, got {self.size!r}")

    @classmethod
    def count(cls, calls: int) -> Window:
        """The last `calls` calls."""
        return cls("count", calls)

    @classmethod
    def time(cls, seconds: float) -> Window:
        """The calls of the last `seconds` seconds."""
        return cls("time", seconds)


def _in_unit(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, int | float) and 0 < value <= 1):
        raise ConfigError(f"Breaker.{name} must be a fraction in (0, 1], got {value!r}")


def _positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"Breaker.{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"Breaker.{name} must be finite, got {value!r}")


def _count(name: str, value: int | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"Breaker.{name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class Breaker:
    """When a circuit breaker trips, how long it stays open, and how it comes back.

    It trips when any configured condition holds:

    - `consecutive_failures` failures in a row;
    - with at least `min_calls` calls in `window`: the share of failures reaches
      `failure_rate`, or the share of calls slower than `slow_call_duration` seconds
      reaches `slow_call_rate` (a slow call counts even when it succeeds).

    Once open it refuses calls for `open_for` seconds (multiplied by `open_backoff` each
    time it reopens in a row, up to `max_open_for`, with `open_jitter` spread), then goes
    half-open: `half_open_calls` probe calls are let through while every other call is
    refused at once. All probes succeeding closes it; one failing reopens it. If every
    permit is out and none has reported for `half_open_max_wait` seconds (a probe hung, or
    its process died), it reopens; a quiet route that simply sees few calls stays
    half-open until its probes arrive.

    Exceptions in `ignore_on` (and BaseExceptions that are not Exceptions, such as a
    cancellation) are ignored; other exceptions in `failure_on` are failures; any other
    exception counts as a success (the dependency answered). `classify_result` turns
    a returned value into an outcome (say, an HTTP 5xx or an SMTP 4xx into a failure).
    """

    failure_rate: float | None = 0.5
    consecutive_failures: int | None = None
    slow_call_duration: float | None = None
    slow_call_rate: float | None = None
    window: Window = field(default_factory=lambda: Window.time(30))
    min_calls: int = 10
    open_for: float = 30.0
    open_backoff: float = 2.0
    max_open_for: float = 300.0
    open_jitter: float = 0.1
    half_open_calls: int = 3
    half_open_max_wait: float = 60.0
    failure_on: tuple[type[BaseException], ...] = (Exception,)
    ignore_on: tuple[type[BaseException], ...] = ()
    classify_result: Callable[[Any], Outcome] | None = None
    mode: Mode = Mode.ENFORCE

    def __post_init__(self) -> None:
        _in_unit("failure_rate", self.failure_rate)
        _count("consecutive_failures", self.consecutive_failures)
        _positive("slow_call_duration", self.slow_call_duration)
        _in_unit("slow_call_rate", self.slow_call_rate)
        if (
            self.failure_rate is None
            and self.consecutive_failures is None
            and (self.slow_call_duration is None)
        ):
            raise ConfigError(
                "Breaker needs a trip condition: failure_rate, consecutive_failures "
                "or slow_call_duration"
            )
        if self.slow_call_rate is not None and self.slow_call_duration is None:
            raise ConfigError(
                f"Breaker.slow_call_rate={self.slow_call_rate!r} needs slow_call_duration"
            )
        if not isinstance(self.window, Window):
            raise ConfigError(f"Breaker.window must be a Window, got {self.window!r}")
        _count("min_calls", self.min_calls, allow_none=False)
        if (
            self.window.kind == "count"
            and self.min_calls > self.window.size
            and (self.failure_rate is not None or self.slow_call_duration is not None)
        ):
            raise ConfigError(
                f"Breaker.min_calls={self.min_calls!r} can never be reached in a window of "
                f"{int(self.window.size)} calls: lower min_calls or widen the window"
            )
        _positive("open_for", self.open_for, allow_none=False)
        if not (isinstance(self.open_backoff, int | float) and 1 <= self.open_backoff <= 100):
            raise ConfigError(
                f"Breaker.open_backoff must be in [1, 100], got {self.open_backoff!r}"
            )
        _positive("max_open_for", self.max_open_for, allow_none=False)
        if self.max_open_for < self.open_for:
            raise ConfigError(
                f"Breaker.max_open_for={self.max_open_for!r} is below open_for={self.open_for!r}"
            )
        if not (isinstance(self.open_jitter, int | float) and 0 <= self.open_jitter < 1):
            raise ConfigError(f"Breaker.open_jitter must be in [0, 1), got {self.open_jitter!r}")
        _count("half_open_calls", self.half_open_calls, allow_none=False)
        _positive("half_open_max_wait", self.half_open_max_wait, allow_none=False)
        for name in ("failure_on", "ignore_on"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in value
            ):
                raise ConfigError(
                    f"Breaker.{name} must be a tuple of exception types, got {value!r}"
                )
        if not isinstance(self.mode, Mode):
            raise ConfigError(f"Breaker.mode must be a Mode, got {self.mode!r}")

    @classmethod
    def rate(
        cls,
        failure_rate: float,
        *,
        slow: float | None = None,
        slow_rate: float | None = None,
        **changes: Any,
    ) -> Breaker:
        """Trip on `failure_rate`, and on slow calls over `slow` seconds when given.

        The slow-call share defaults to `failure_rate`:
        ``Breaker.rate(0.5, slow=2.0)`` trips when half the calls fail or take 2 s or more.
        """
        if slow is not None and slow_rate is None:
            slow_rate = failure_rate
        return cls(
            failure_rate=failure_rate,
            slow_call_duration=slow,
            slow_call_rate=slow_rate,
            **changes,
        )

    @classmethod
    def consecutive(cls, failures: int, **changes: Any) -> Breaker:
        """Trip after `failures` failures in a row (no rate condition)."""
        changes.setdefault("failure_rate", None)
        return cls(consecutive_failures=failures, **changes)

    def copy(self, **changes: Any) -> Breaker:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def classify_exception(self, error: BaseException) -> Outcome:
        """The outcome of a call that raised `error`."""
        if isinstance(error, self.ignore_on) or not isinstance(error, Exception):
            return Outcome.IGNORED
        if isinstance(error, self.failure_on):
            return Outcome.FAILURE
        return Outcome.SUCCESS

    def effective_slow_rate(self) -> float:
        """The slow-call share that trips (1.0 when only a duration was given)."""
        return 1.0 if self.slow_call_rate is None else self.slow_call_rate

    def open_duration(self, reopenings: int, jitter_draw: float) -> float:
        """How long to stay open after the `reopenings`-th consecutive opening (from 0).

        `jitter_draw` is a number in [0, 1) that spreads the duration by +-open_jitter.
        """
        base = min(self.max_open_for, self.open_for * self.open_backoff ** min(reopenings, 64))
        spread = 1.0 + self.open_jitter * (2.0 * jitter_draw - 1.0)
        return min(self.max_open_for, base * spread)
