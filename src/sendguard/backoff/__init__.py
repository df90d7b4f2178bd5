"""Jittered retries, retry budgets, Retry-After, and a poller that backs off.

    from sendguard.backoff import RetryPolicy, RetryTransport, poll, retry

    client = httpx.Client(transport=RetryTransport(policy=RetryPolicy(deadline=10)))

    @retry(RetryPolicy(attempts=5), on=ConnectionError)
    def send(message): ...

    report = poll(fetch_report, until=lambda r: r["state"] == "done", every=2, deadline=600)

The waits are tenacity wait strategies (`wait_full_jitter`, `wait_equal_jitter`,
`wait_decorrelated_jitter`, `wait_retry_after`) and a policy takes users' own tenacity
pieces (``RetryPolicy(wait=..., stop=...)``). The httpx transports live in
`sendguard.backoff.transports` (``pip install sendguard[http]``); they are importable
from here too, and httpx is imported only when they are.

See docs/backoff.md for the defaults and why, the budget, and safe retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sendguard.backoff._budget import Budgets, TokenBucket
from sendguard.backoff._engine import RetryStats
from sendguard.backoff._events import BudgetExhausted, GaveUp, RetryScheduled
from sendguard.backoff._hints import hint_from, parse_ratelimit_reset, parse_retry_after
from sendguard.backoff._http import IDEMPOTENCY_HEADER, IDEMPOTENT_METHODS, RETRY_STATUSES
from sendguard.backoff._policy import TESTING_ATTEMPTS, Jitter, RetryBudget, RetryPolicy
from sendguard.backoff._poll import PollTimeout, apoll, poll
from sendguard.backoff._retrier import ErrorFilter, Retrier, retry, transient_error
from sendguard.backoff._waits import (
    JitterWait,
    backoff_delay,
    wait_decorrelated_jitter,
    wait_equal_jitter,
    wait_full_jitter,
    wait_retry_after,
)

if TYPE_CHECKING:
    from sendguard.backoff.transports import AsyncRetryTransport, RetryTransport

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "TESTING_ATTEMPTS",
    "AsyncRetryTransport",
    "BudgetExhausted",
    "Budgets",
    "ErrorFilter",
    "GaveUp",
    "Jitter",
    "JitterWait",
    "PollTimeout",
    "Retrier",
    "RetryBudget",
    "RetryPolicy",
    "RetryScheduled",
    "RetryStats",
    "RetryTransport",
    "TokenBucket",
    "apoll",
    "backoff_delay",
    "hint_from",
    "parse_ratelimit_reset",
    "parse_retry_after",
    "poll",
    "retry",
    "transient_error",
    "wait_decorrelated_jitter",
    "wait_equal_jitter",
    "wait_full_jitter",
    "wait_retry_after",
]

_LAZY = {"AsyncRetryTransport", "RetryTransport"}


def __getattr__(name: str) -> Any:
    """Import the httpx transports on first use, so `sendguard.backoff` needs no httpx."""
    if name in _LAZY:
        from sendguard.backoff import transports

        return getattr(transports, name)
    raise AttributeError(f"module 'sendguard.backoff' has no attribute {name!r}")
