"""`LedgerPolicy`: how long an attempt holds its key, what counts as unknown, and when to refuse."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from sendguard._core.errors import ConfigError

__all__ = ["DEFAULT_UNKNOWN_ON", "LedgerPolicy"]

DEFAULT_UNKNOWN_ON: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionResetError,
    BrokenPipeError,
)
"""Errors after which a send may or may not have happened (the link dropped mid-call)."""


def _seconds(name: str, value: object, low: float) -> None:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < low
    ):
        raise ConfigError(f"LedgerPolicy.{name} must be at least {low:g} seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class LedgerPolicy:
    """How a `Ledger` treats its calls.

    Attributes:
        lease: seconds an attempt holds its key; past it, the attempt counts as abandoned.
            Make it longer than the slowest call: a worker that dies is noticed after this.
        retention: seconds a COMPLETED or FAILED entry is kept: the replay window (a week).
            UNKNOWN entries are kept until resolved.
        retry_abandoned: False: an abandoned attempt's key becomes UNKNOWN (the worker may
            have acted before it died). True: the next call runs again (for effects that
            are safe to repeat).
        unknown_on: exceptions that leave the outcome unknown (default: timeouts and
            connections reset mid-call). Other exceptions are failures: the next call
            runs again. An exception that is not an `Exception` (a cancellation, a
            SystemExit) always leaves it unknown.
        on_store_down: ``"refuse"``: raise `StoreUnavailable` so the job fails and its
            queue retries it later, never twice. ``"run"``: run unguarded, with a warning.
        max_result_bytes: results longer than this as JSON are not kept, only digested.
    """

    lease: float = 60.0
    retention: float = 7 * 86400.0
    retry_abandoned: bool = False
    unknown_on: tuple[type[BaseException], ...] = DEFAULT_UNKNOWN_ON
    on_store_down: Literal["refuse", "run"] = "refuse"
    max_result_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        _seconds("lease", self.lease, 0.01)
        _seconds("retention", self.retention, 1.0)
        if not isinstance(self.retry_abandoned, bool):
            raise ConfigError(
                f"LedgerPolicy.retry_abandoned must be a bool, got {self.retry_abandoned!r}"
            )
        if not isinstance(self.unknown_on, tuple) or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in self.unknown_on
        ):
            raise ConfigError(
                f"LedgerPolicy.unknown_on must be a tuple of exception types, "
                f"got {self.unknown_on!r}"
            )
        if self.on_store_down not in ("refuse", "run"):
            raise ConfigError(
                f"LedgerPolicy.on_store_down must be 'refuse' or 'run', got {self.on_store_down!r}"
            )
        if (
            not isinstance(self.max_result_bytes, int)
            or isinstance(self.max_result_bytes, bool)
            or self.max_result_bytes < 0
        ):
            raise ConfigError(
                f"LedgerPolicy.max_result_bytes must be >= 0, got {self.max_result_bytes!r}"
            )

    def copy(self, **changes: Any) -> LedgerPolicy:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)
