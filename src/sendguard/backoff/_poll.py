"""`poll` and `apoll`: the polling loop the analytics-storm modal should have had.

A poller calls `fn` until ``until(result)`` holds. Between polls it waits with jittered
exponential backoff, from `every` up to `max_interval`: after a poll that was not ready
yet, and after one that failed (a transient error, or a response with a 429 or 5xx
status). A Retry-After (or RateLimit ``t``) on the answer is a floor on the next wait.
It stops at `deadline` with `PollTimeout`, and never starts a wait that would end past
it. It is the same engine as the retriers, so testing mode makes it instant too.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.durations import format_duration
from sendguard._core.errors import ConfigError, SendguardError
from sendguard._core.telemetry import Hook
from sendguard.backoff._engine import Attempt, RetryRun
from sendguard.backoff._hints import hint_from
from sendguard.backoff._policy import Jitter, RetryPolicy, check_schedule
from sendguard.backoff._retrier import ErrorFilter, Retrier, transient_error

__all__ = ["PollTimeout", "apoll", "poll"]

T = TypeVar("T")
_UNBOUNDED = 2**31 - 1


class PollTimeout(SendguardError, TimeoutError):
    """A poll reached its deadline before `until` held.

    Attributes:
        last: the last result seen (None if the last poll raised; that error is the
            ``__cause__``).
        polls: how many times `fn` was called.
        elapsed: seconds from the first poll to giving up.
    """

    def __init__(self, message: str, *, last: object, polls: int, elapsed: float) -> None:
        super().__init__(message)
        self.last = last
        self.polls = polls
        self.elapsed = elapsed


class _Poller(Retrier):
    """A retrier whose "retryable result" is one that is not ready yet."""

    def __init__(
        self, until: Callable[[Any], bool], deadline: float, *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, retry_if_result=until, **kwargs)
        self.until = until
        self.deadline = deadline

    def _returned(self, result: object) -> Attempt:
        status = getattr(result, "status_code", None)
        hint = hint_from(result, self.engine.clock.wall())
        if isinstance(status, int) and (status == 429 or status >= 500):
            return Attempt(result=result, retryable=True, reason=f"status_{status}", hint=hint)
        if self.until(result):
            return Attempt(result=result, retryable=False, reason="ready")
        return Attempt(result=result, retryable=True, reason="not_ready", hint=hint)

    def _exhausted(self, attempt: Attempt, run: RetryRun) -> Any:
        elapsed = self.engine.now() - run.start
        raise PollTimeout(
            f"poll {self.name!r} not ready after {run.attempts} polls in "
            f"{format_duration(elapsed)} (deadline {format_duration(self.deadline)}; "
            f"last: {attempt.reason})",
            last=attempt.result,
            polls=run.attempts,
            elapsed=elapsed,
        ) from attempt.error


def _poller(
    until: Callable[[Any], bool],
    every: float,
    max_interval: float,
    deadline: float,
    jitter: Jitter,
    on: ErrorFilter,
    name: str,
    clock: Clock,
    hooks: Sequence[Hook] | None,
    rng: random.Random | None,
) -> _Poller:
    if not callable(until):
        raise ConfigError(f"poll until= must be a predicate, got {until!r}")
    check_schedule("poll", every, max_interval, jitter, ("every", "max_interval"))
    if (
        not isinstance(deadline, int | float)
        or isinstance(deadline, bool)
        or not 0 < deadline < float("inf")
    ):
        raise ConfigError(f"poll deadline must be a positive number of seconds, got {deadline!r}")
    policy = RetryPolicy(
        attempts=_UNBOUNDED,
        base=every,
        cap=max_interval,
        jitter=jitter,
        deadline=deadline,
        max_retry_after=deadline,
        budget=None,
    )
    return _Poller(until, deadline, policy, on=on, name=name, clock=clock, hooks=hooks, rng=rng)


def poll(
    fn: Callable[[], T],
    *,
    until: Callable[[T], bool] = bool,
    every: float = 1.0,
    max_interval: float = 30.0,
    deadline: float,
    jitter: Jitter = Jitter.EQUAL,
    on: ErrorFilter = transient_error,
    name: str = "poll",
    clock: Clock = SYSTEM_CLOCK,
    hooks: Sequence[Hook] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call `fn` until ``until(result)`` holds; return that result.

    The n-th wait is ``min(max_interval, every * 2 ** (n - 1))`` spread by `jitter`
    (equal jitter by default: between half and all of it, so a poller never polls again
    at once), or longer if the server sent Retry-After. Errors that `on` accepts and
    429/5xx responses are waited out the same way; other errors propagate. Raises
    `PollTimeout` when the next wait would end past `deadline` seconds.
    """
    poller = _poller(until, every, max_interval, deadline, jitter, on, name, clock, hooks, rng)
    return poller.call(fn)


async def apoll(
    fn: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], bool] = bool,
    every: float = 1.0,
    max_interval: float = 30.0,
    deadline: float,
    jitter: Jitter = Jitter.EQUAL,
    on: ErrorFilter = transient_error,
    name: str = "poll",
    clock: Clock = SYSTEM_CLOCK,
    hooks: Sequence[Hook] | None = None,
    rng: random.Random | None = None,
) -> T:
    """`poll` for coroutines: awaits `fn()`; each poll is cut off at the deadline."""
    poller = _poller(until, every, max_interval, deadline, jitter, on, name, clock, hooks, rng)
    return await poller.acall(fn)
