"""The sendguard exception tree.

    SendguardError                  base of everything sendguard raises
    ├── ConfigError (ValueError)    bad configuration, raised when a policy is built
    ├── Rejected                    a guard refused a call; carries retry_after, key, policy
    │   ├── RateLimited             a rate limit has no room (HTTP 429)
    │   ├── BreakerOpen             the circuit breaker is open, half-open and full, or forced
    │   └── BulkheadFull            every slot of a bulkhead is taken (HTTP 503)
    └── StoreUnavailable            the shared store could not be reached (used internally;
                                    guards fall back and never let it reach a request)

A `Rejected` is advice as much as an error: `retry_after` says when trying again can
succeed, and the HTTP adapters turn it into a `Retry-After` header.
"""

from __future__ import annotations

__all__ = [
    "BreakerOpen",
    "BulkheadFull",
    "ConfigError",
    "RateLimited",
    "Rejected",
    "SendguardError",
    "StoreUnavailable",
]


class SendguardError(Exception):
    """Base class of every error sendguard raises."""


class ConfigError(SendguardError, ValueError):
    """A policy or setting is invalid. The message names the field and the bad value."""


class Rejected(SendguardError):
    """A guard refused the call without running it.

    Attributes:
        retry_after: seconds after which a retry may be admitted (never negative).
        key: the guarded key (breaker name, limit key) that decided.
        policy: the policy object that decided.
        reason: a short machine-readable reason: the refusing state's value
            (`"open"`, `"half_open"`, `"forced_open"`) for a breaker.
    """

    def __init__(
        self, message: str, *, retry_after: float, key: str, policy: object, reason: str
    ) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)
        self.key = key
        self.policy = policy
        self.reason = reason


class BreakerOpen(Rejected):
    """The circuit breaker refused the call (open, forced open, or half-open with no permit)."""


class RateLimited(Rejected):
    """A rate limit refused the request (no room for its cost in some window)."""


class BulkheadFull(Rejected):
    """Every slot of a bulkhead was taken for the whole allowed wait."""


class StoreUnavailable(SendguardError):
    """The shared store (Redis) did not answer in time or refused the command."""
