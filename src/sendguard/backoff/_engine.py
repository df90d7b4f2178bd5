"""The retry decision, free of I/O: after a failed attempt, wait how long, or stop?

`RetryEngine.next_delay` is the one place that decides; every driver (the generic
retrier, the httpx transports, the poller, sync and async) is a small loop that makes
attempts, classifies them into an `Attempt` and asks the engine. A call that succeeds
first time never reaches the engine: it costs its driver a counter tick and a look at
the budget. The engine reads time from an injected clock and draws jitter from its own
generator, so a test with a `FakeClock` and a seeded generator repeats exactly.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from sendguard._core.clock import SYSTEM_CLOCK, Clock, SystemClock
from sendguard._core.config import is_testing, make_rng
from sendguard._core.telemetry import Telemetry
from sendguard.backoff._budget import Budgets, TokenBucket
from sendguard.backoff._events import BudgetExhausted, GaveUp, RetryScheduled
from sendguard.backoff._policy import TESTING_ATTEMPTS, RetryPolicy
from sendguard.backoff._waits import backoff_delay

__all__ = ["Attempt", "RetryEngine", "RetryRun", "RetryStats", "StopReason"]

StopReason = Literal["attempts", "deadline", "budget", "stop", "retry_after"]
HINT_SPREAD = 0.1
"""A Retry-After wait is stretched by up to this share, so clients told the same value
do not all come back in the same instant."""


class Attempt:
    """One attempt's outcome as a driver classified it."""

    __slots__ = ("error", "hint", "reason", "result", "retryable")

    def __init__(
        self,
        *,
        result: object = None,
        error: BaseException | None = None,
        retryable: bool,
        reason: str,
        hint: float | None = None,
    ) -> None:
        self.result = result
        self.error = error
        self.retryable = retryable
        self.reason = reason
        self.hint = hint


class RetryRun:
    """Bookkeeping of one call that has failed at least once (made only then)."""

    __slots__ = ("args", "attempts", "fn", "key", "kwargs", "previous", "start", "waited")

    def __init__(
        self,
        start: float,
        key: str = "",
        fn: Callable[..., Any] | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.start = start
        self.key = key
        self.attempts = 1
        """Attempts made so far (the first has been made when a run starts)."""
        self.previous = 0.0
        """The last delay (decorrelated jitter grows from it)."""
        self.waited = 0.0
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}


class RetryStats:
    """Cumulative counts of one retrier or transport (read by the OpenTelemetry hook)."""

    __slots__ = ("_lock", "_reads", "_tick", "budget_exhausted", "gave_up", "retries", "waited")

    def __init__(self) -> None:
        self._tick = itertools.count().__next__
        self._reads = 0
        self._lock = threading.Lock()
        self.retries = 0
        self.gave_up = 0
        self.budget_exhausted = 0
        self.waited = 0.0

    @property
    def tick(self) -> Callable[[], int]:
        """Count one call (lock-free; the success path's only bookkeeping)."""
        return self._tick

    @property
    def calls(self) -> int:
        """Calls started (each makes one attempt, plus its retries)."""
        with self._lock:  # a read ticks the counter too; count the reads to subtract them
            ticks = self._tick()
            reads = self._reads
            self._reads += 1
        return ticks - reads

    @property
    def attempts(self) -> int:
        """Attempts made: every call's first, plus every retry."""
        return self.calls + self.retries

    def record_retry(self, delay: float) -> None:
        """Count one retry that waits `delay` seconds first."""
        with self._lock:
            self.retries += 1
            self.waited += delay

    def record_give_up(self, budget: bool) -> None:
        """Count one call that stopped retrying (because of the budget, if `budget`)."""
        with self._lock:
            self.gave_up += 1
            self.budget_exhausted += budget

    def as_dict(self) -> dict[str, float]:
        """All counts by name."""
        return {
            "calls": self.calls,
            "attempts": self.attempts,
            "retries": self.retries,
            "gave_up": self.gave_up,
            "budget_exhausted": self.budget_exhausted,
            "waited": self.waited,
        }


class RetryEngine:
    """Decides retries for one client under one `RetryPolicy`.

    `name` labels the client in telemetry. `budgets` holds its retry budget (built from
    ``policy.budget`` unless a shared `Budgets` is given; None when the policy has none).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        name: str,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
        budgets: Budgets | None = None,
        rng: random.Random | None = None,
        stats: RetryStats | None = None,
    ) -> None:
        self.policy = policy
        self.name = name
        self.clock = clock
        self.now: Callable[[], float] = (
            time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        )
        self.telemetry = telemetry or Telemetry()
        if budgets is None and policy.budget is not None:
            budgets = Budgets(policy.budget)
        self.budgets = budgets
        self.stats = stats or RetryStats()
        self._rng = make_rng(rng)
        self._owner: Any = None

    # --- timing -------------------------------------------------------------------------

    def attempt_timeout(self, start: float, now: float) -> float | None:
        """Seconds the next attempt may take: the per-attempt timeout, within the deadline."""
        policy = self.policy
        limit = policy.attempt_timeout
        if policy.deadline is not None:
            left = max(0.0, policy.deadline - (now - start))
            limit = left if limit is None else min(limit, left)
        return limit

    def bucket(self, key: str) -> TokenBucket | None:
        """The retry budget of `key` (a host, or "" for the whole client)."""
        return None if self.budgets is None else self.budgets.bucket(key)

    def succeeded(self, key: str, retried: bool) -> None:
        """Record a success in the budget (a retried one gets its token back)."""
        bucket = self.bucket(key)
        if bucket is not None:
            bucket.succeeded(retried)

    # --- the decision -------------------------------------------------------------------

    def next_delay(self, run: RetryRun, attempt: Attempt) -> float | None:
        """Seconds to wait before the next attempt, or None to stop with this outcome.

        Stops when the outcome is not retryable, when the attempts are used up (at most
        `TESTING_ATTEMPTS` in testing mode), when the user's tenacity `stop` says so, when
        the server asks for a longer wait than the policy trusts, when the wait would end
        past the deadline, or when the budget cannot pay for the retry. In testing mode
        every wait is zero.
        """
        if not attempt.retryable:
            return None
        policy = self.policy
        testing = is_testing()
        now = self.now()
        limit = min(policy.attempts, TESTING_ATTEMPTS) if testing else policy.attempts
        if run.attempts >= limit:
            return self._give_up(run, attempt, "attempts", now)
        if policy.stop is not None and policy.stop(self._tenacity_state(run, attempt, now)):
            return self._give_up(run, attempt, "stop", now)
        hint = attempt.hint
        if hint is not None and hint > policy.max_retry_after:
            return self._give_up(run, attempt, "retry_after", now)
        delay = self._backoff(run, attempt, now)
        if hint is not None:
            stretched = hint * (1.0 + HINT_SPREAD * self._rng.random())
            delay = max(delay, min(policy.max_retry_after, stretched))
        run.previous = delay
        if testing:
            delay = 0.0
        if policy.deadline is not None and (now - run.start) + delay >= policy.deadline:
            return self._give_up(run, attempt, "deadline", now)
        bucket = self.bucket(run.key)
        if bucket is not None and not bucket.try_spend():
            self.telemetry.emit(
                BudgetExhausted(client=self.name, key=run.key, reason=attempt.reason)
            )
            return self._give_up(run, attempt, "budget", now)
        run.attempts += 1
        run.waited += delay
        self.stats.record_retry(delay)
        self.telemetry.emit(
            RetryScheduled(
                client=self.name,
                reason=attempt.reason,
                attempt=run.attempts - 1,
                delay=delay,
                retry_after=hint,
            )
        )
        return delay

    def _backoff(self, run: RetryRun, attempt: Attempt, now: float) -> float:
        policy = self.policy
        if policy.wait is not None:
            return max(0.0, float(policy.wait(self._tenacity_state(run, attempt, now))))
        previous = run.previous or policy.base
        draw = self._rng.random()
        return backoff_delay(policy.jitter, run.attempts, previous, policy.base, policy.cap, draw)

    def _give_up(
        self, run: RetryRun, attempt: Attempt, why: StopReason, now: float
    ) -> float | None:
        self.stats.record_give_up(why == "budget")
        self.telemetry.emit(
            GaveUp(
                client=self.name,
                why=why,
                attempts=run.attempts,
                reason=attempt.reason,
                elapsed=now - run.start,
            )
        )
        return None

    # --- tenacity interop ---------------------------------------------------------------

    def _tenacity_state(self, run: RetryRun, attempt: Attempt, now: float) -> Any:
        """A `tenacity.RetryCallState` describing this run, for users' wait and stop pieces."""
        from tenacity import Future, RetryCallState, Retrying

        if self._owner is None:
            kwargs: dict[str, Any] = {}
            if self.policy.wait is not None:
                kwargs["wait"] = self.policy.wait
            if self.policy.stop is not None:
                kwargs["stop"] = self.policy.stop
            self._owner = Retrying(**kwargs)
        state = RetryCallState(self._owner, run.fn, run.args, run.kwargs)
        state.start_time = run.start
        state.attempt_number = run.attempts
        failed = attempt.error is not None
        state.outcome = Future.construct(
            run.attempts, attempt.error if failed else attempt.result, failed
        )
        state.outcome_timestamp = now
        state.idle_for = run.waited
        state.upcoming_sleep = run.previous
        return state
