"""Retry policies: immutable values validated when they are built.

`RetryPolicy` says how often and how long to retry (attempts, the jittered backoff, a
total deadline, a per-attempt timeout, how far to trust Retry-After); `RetryBudget` says
how many retries a client may spend against a host before it must earn more with
successes. Both are frozen dataclasses; `copy(**changes)` makes a variant (validated
again). Bad values raise `ConfigError` naming the field and the value.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sendguard._core.errors import ConfigError

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["TESTING_ATTEMPTS", "Jitter", "RetryBudget", "RetryPolicy", "check_schedule"]

TESTING_ATTEMPTS = 5
"""Under `sendguard.testing.set_testing()` no call makes more attempts than this (and no
wait lasts any time at all), so code under test that retries or polls runs at once."""

WaitFn = Callable[["RetryCallState"], float]
StopFn = Callable[["RetryCallState"], bool]


class Jitter(enum.Enum):
    """How a backoff delay is spread (the names of the "Exponential Backoff and Jitter" study).

    With ``d = min(cap, base * 2 ** (retry - 1))`` for the n-th retry:
    """

    NONE = "none"
    """Exactly ``d``: clients that failed together retry together (for comparison only)."""
    FULL = "full"
    """Uniform in ``[0, d]``: the fewest calls under contention; the default."""
    EQUAL = "equal"
    """Uniform in ``[d/2, d]``: never retries at once; suits pollers."""
    DECORRELATED = "decorrelated"
    """Uniform in ``[base, 3 * previous delay]``, capped: grows from the last wait."""


def _number(owner: str, name: str, value: object, *, low: float, allow_zero: bool) -> None:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= low if allow_zero else value > low)
    )
    if not ok:
        bound = f">= {low:g}" if allow_zero else f"> {low:g}"
        raise ConfigError(f"{owner}.{name} must be a finite number {bound}, got {value!r}")


def check_schedule(
    owner: str,
    base: object,
    cap: object,
    jitter: object = Jitter.FULL,
    names: tuple[str, str] = ("base", "cap"),
) -> None:
    """Validate a backoff schedule: 0 < base <= cap, both finite, and a `Jitter`."""
    low, high = names
    _number(owner, low, base, low=0, allow_zero=False)
    _number(owner, high, cap, low=0, allow_zero=False)
    if base > cap:  # type: ignore[operator]
        raise ConfigError(f"{owner}.{low}={base!r} is above {high}={cap!r}: {low} <= {high}")
    if not isinstance(jitter, Jitter):
        raise ConfigError(f"{owner}.jitter must be a Jitter, got {jitter!r}")


def _whole(owner: str, name: str, value: object, *, low: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{owner}.{name} must be a whole number >= {low}, got {value!r}")


@dataclass(frozen=True, slots=True)
class RetryBudget:
    """A token bucket that bounds how much retries can add to the load on a dependency.

    The bucket starts full with `capacity` tokens. Each retry spends one token; a retry
    with no token left is not made (the call fails with what it got). Each success
    deposits `ratio` tokens, and a retry that succeeds gets its token back, so retries
    that fail can never exceed `capacity` plus `ratio` times the successes: during a
    total outage a client adds at most `capacity` requests however many calls it makes,
    and in a partial one at most ``ratio`` (10 % by default) on top of the load that
    succeeds. `per` picks one bucket per client or one per host (HTTP transports; a
    generic retrier has one bucket); at most `max_keys` host buckets are kept.

    The defaults follow gRPC retry throttling (10 tokens, 0.1 earned per success) and the
    AWS SDKs' standard retry mode (a bucket that starts full, retries spend, successful
    retries refund) scaled to one token per retry.
    """

    capacity: float = 10.0
    ratio: float = 0.1
    per: Literal["client", "host"] = "host"
    max_keys: int = 1024

    def __post_init__(self) -> None:
        _number("RetryBudget", "capacity", self.capacity, low=1, allow_zero=True)
        _number("RetryBudget", "ratio", self.ratio, low=0, allow_zero=True)
        if self.ratio > 1:
            raise ConfigError(f"RetryBudget.ratio must be at most 1, got {self.ratio!r}")
        if self.per not in ("client", "host"):
            raise ConfigError(f"RetryBudget.per must be 'client' or 'host', got {self.per!r}")
        _whole("RetryBudget", "max_keys", self.max_keys)

    def copy(self, **changes: Any) -> RetryBudget:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a call is retried: attempts, jittered exponential backoff, deadline, budget.

    The n-th retry waits ``min(cap, base * 2 ** (n - 1))`` seconds spread by `jitter`
    (full jitter by default). A Retry-After (or RateLimit ``t``) from the server is a
    floor on the wait, trusted up to `max_retry_after` seconds. No wait starts that would
    end after `deadline` seconds from the first attempt; each attempt gets at most
    `attempt_timeout` seconds (and never more than what is left of the deadline). At most
    `attempts` attempts are made in all, and each retry must be paid from `budget`
    (None: unbudgeted).

    `wait` and `stop` take users' own tenacity pieces: `wait` replaces the jittered
    backoff (``wait=wait_fixed(1) + wait_random(0, 1)``), `stop` adds a condition to
    give up on (``stop=stop_after_delay(10) | stop_when_event_set(done)``).
    `as_tenacity()` goes the other way and hands this policy to a plain
    `tenacity.Retrying`.
    """

    attempts: int = 3
    base: float = 0.5
    cap: float = 20.0
    jitter: Jitter = Jitter.FULL
    deadline: float | None = None
    attempt_timeout: float | None = None
    max_retry_after: float = 30.0
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    wait: WaitFn | None = None
    stop: StopFn | None = None

    def __post_init__(self) -> None:
        _whole("RetryPolicy", "attempts", self.attempts)
        check_schedule("RetryPolicy", self.base, self.cap, self.jitter)
        for name in ("deadline", "attempt_timeout"):
            value = getattr(self, name)
            if value is not None:
                _number("RetryPolicy", name, value, low=0, allow_zero=False)
        _number("RetryPolicy", "max_retry_after", self.max_retry_after, low=0, allow_zero=True)
        if self.budget is not None and not isinstance(self.budget, RetryBudget):
            raise ConfigError(
                f"RetryPolicy.budget must be a RetryBudget or None, got {self.budget!r}"
            )
        for name in ("wait", "stop"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigError(
                    f"RetryPolicy.{name} must be a tenacity {name} strategy, got {value!r}"
                )

    def copy(self, **changes: Any) -> RetryPolicy:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def backoff_wait(self) -> WaitFn:
        """The tenacity wait strategy of this policy (its `wait`, else its jittered backoff)."""
        if self.wait is not None:
            return self.wait
        from sendguard.backoff._waits import JitterWait

        return JitterWait(self.jitter, self.base, self.cap)

    def as_tenacity(self) -> dict[str, Any]:
        """This policy's ``wait`` and ``stop`` as tenacity pieces, for `tenacity.Retrying`.

        ``Retrying(**policy.as_tenacity(), retry=retry_if_exception_type(OSError))``
        retries with the same backoff, Retry-After handling, attempts and deadline (the
        budget and the per-attempt timeout need sendguard's own drivers).
        """
        from tenacity import stop_after_attempt, stop_before_delay

        from sendguard.backoff._waits import wait_retry_after

        stop: Any = stop_after_attempt(self.attempts)
        if self.deadline is not None:
            stop = stop | stop_before_delay(self.deadline)
        if self.stop is not None:
            stop = stop | _as_stop(self.stop)
        return {
            "wait": wait_retry_after(self.backoff_wait(), max_wait=self.max_retry_after),
            "stop": stop,
        }


def _as_stop(fn: StopFn) -> Any:
    """A plain stop callable as a tenacity `stop_base`, so it combines with ``|``."""
    from tenacity.stop import stop_base

    if isinstance(fn, stop_base):
        return fn

    class _Stop(stop_base):
        def __call__(self, retry_state: RetryCallState) -> bool:
            return fn(retry_state)

    return _Stop()
