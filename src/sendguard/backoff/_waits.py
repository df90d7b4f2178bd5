"""Jittered backoff: the pure delay arithmetic and its tenacity wait strategies.

`backoff_delay` is the whole of the jitter arithmetic, a pure function of the retry
number, the previous delay and one uniform draw. The `wait_*` classes wrap it as tenacity
wait strategies, so they go wherever tenacity takes a ``wait=`` and add up with
tenacity's own (``wait_full_jitter(0.1, 10) + wait_fixed(0.5)``). `wait_retry_after`
puts a server's Retry-After (or RateLimit ``t``) in front of any wait strategy.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenacity.wait import wait_base

from sendguard._core.config import make_rng
from sendguard._core.errors import ConfigError
from sendguard.backoff._hints import hint_from
from sendguard.backoff._policy import Jitter, check_schedule

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = [
    "JitterWait",
    "backoff_delay",
    "wait_decorrelated_jitter",
    "wait_equal_jitter",
    "wait_full_jitter",
    "wait_retry_after",
]

_MAX_EXPONENT = 64


def backoff_delay(
    jitter: Jitter, retry: int, previous: float, base: float, cap: float, draw: float
) -> float:
    """Seconds to wait before retry number `retry` (1 for the first retry).

    `previous` is the delay before the previous retry (`base` before the first; only
    decorrelated jitter reads it) and `draw` a uniform number in [0, 1). The result is
    always within [0, cap].
    """
    if jitter is Jitter.DECORRELATED:
        low = base
        high = max(base, 3.0 * previous)
        return min(cap, low + draw * (high - low))
    ceiling = min(cap, base * 2.0 ** min(max(retry - 1, 0), _MAX_EXPONENT))
    if jitter is Jitter.FULL:
        return draw * ceiling
    if jitter is Jitter.EQUAL:
        return ceiling / 2.0 + draw * ceiling / 2.0
    return ceiling


class JitterWait(wait_base):
    """A tenacity wait strategy: exponential backoff from `base` to `cap` with `jitter`.

    Reads the attempt number and the previous sleep from tenacity's `RetryCallState`, so
    it needs no state of its own and one instance may serve many calls at once.
    """

    def __init__(
        self, jitter: Jitter, base: float, cap: float, *, rng: random.Random | None = None
    ) -> None:
        check_schedule(type(self).__name__, base, cap, jitter)
        self.jitter = jitter
        self.base = float(base)
        self.cap = float(cap)
        self._rng = make_rng(rng)

    def __call__(self, retry_state: RetryCallState) -> float:
        previous = retry_state.upcoming_sleep or self.base
        return backoff_delay(
            self.jitter,
            retry_state.attempt_number,
            previous,
            self.base,
            self.cap,
            self._rng.random(),
        )

    def __repr__(self) -> str:
        schedule = f"base={self.base!r}, cap={self.cap!r}"
        if type(self) is JitterWait:
            return f"JitterWait({self.jitter}, {schedule})"
        return f"{type(self).__name__}({schedule})"


class wait_full_jitter(JitterWait):
    """Tenacity wait: uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]`` (the default)."""

    def __init__(
        self, base: float = 0.5, cap: float = 20.0, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(Jitter.FULL, base, cap, rng=rng)


class wait_equal_jitter(JitterWait):
    """Tenacity wait: uniform in the upper half of the exponential delay."""

    def __init__(
        self, base: float = 0.5, cap: float = 20.0, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(Jitter.EQUAL, base, cap, rng=rng)


class wait_decorrelated_jitter(JitterWait):
    """Tenacity wait: uniform in ``[base, 3 * previous sleep]``, capped at `cap`."""

    def __init__(
        self, base: float = 0.5, cap: float = 20.0, *, rng: random.Random | None = None
    ) -> None:
        super().__init__(Jitter.DECORRELATED, base, cap, rng=rng)


class wait_retry_after(wait_base):
    """Tenacity wait: the server's Retry-After when the last outcome carries one, else `fallback`.

    The outcome may be a response (any object with ``status_code`` and ``headers``,
    such as an `httpx.Response`) or an exception carrying one in ``.response`` (such as
    `httpx.HTTPStatusError`). Retry-After is read on 429 and 503 answers as
    delta-seconds or an HTTP date, and RateLimit's ``t`` on a 429; malformed values
    are ignored. The wait is ``max(hint, fallback)``, with the hint capped at `max_wait`
    seconds.
    """

    def __init__(
        self,
        fallback: Callable[[RetryCallState], float] | None = None,
        *,
        max_wait: float = 30.0,
        now: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(max_wait, int | float) or not 0 <= max_wait < float("inf"):
            raise ConfigError(f"wait_retry_after max_wait must be >= 0 seconds, got {max_wait!r}")
        self.fallback = fallback or wait_full_jitter()
        self.max_wait = float(max_wait)
        self._now = now

    def __call__(self, retry_state: RetryCallState) -> float:
        fallback = float(self.fallback(retry_state))
        outcome = retry_state.outcome
        if outcome is None:
            return fallback
        error = outcome.exception()
        subject: object = error if error is not None else outcome.result()
        hint = hint_from(subject, self._now() if self._now else None)
        if hint is None:
            return fallback
        return max(fallback, min(hint, self.max_wait))
