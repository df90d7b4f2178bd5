"""Retry budgets at run time: token buckets, one per client or one per host.

A bucket's lock guards only its own arithmetic (a few float operations), never a call.
A success on a full bucket (the steady state) costs one attribute read and no lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sendguard._core.errors import ConfigError
from sendguard.backoff._policy import RetryBudget

__all__ = ["Budgets", "TokenBucket"]


class TokenBucket:
    """One retry budget: `tokens` out of `capacity`; a retry spends one.

    `spent` counts retries paid for and `refused` retries the bucket could not pay for.
    """

    __slots__ = ("_lock", "capacity", "ratio", "refused", "spent", "tokens")

    def __init__(self, policy: RetryBudget) -> None:
        self.capacity = float(policy.capacity)
        self.ratio = float(policy.ratio)
        self.tokens = self.capacity
        self.spent = 0
        self.refused = 0
        self._lock = threading.Lock()

    def try_spend(self) -> bool:
        """Take one token for a retry; False (and nothing taken) if less than one is left."""
        with self._lock:
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                self.spent += 1
                return True
            self.refused += 1
            return False

    def succeeded(self, retried: bool = False) -> None:
        """Record a success: earn `ratio` tokens, plus the token back if it was a retry."""
        if self.tokens >= self.capacity:
            return
        earned = self.ratio + (1.0 if retried else 0.0)
        with self._lock:
            self.tokens = min(self.capacity, self.tokens + earned)

    def __repr__(self) -> str:
        return f"TokenBucket(tokens={self.tokens:.2f}/{self.capacity:g})"


class Budgets:
    """Retry budgets by key: one `TokenBucket` per host (or a single one per client).

    Share one `Budgets` between clients (a sync and an async transport to the same
    API) to give them one budget. With ``policy.per == "client"`` every key maps to the
    same bucket. At most ``policy.max_keys`` host buckets are kept; the least recently
    created goes first (a host seen again starts with a full bucket).
    """

    __slots__ = ("_buckets", "_lock", "_single", "policy")

    def __init__(self, policy: RetryBudget | None = None) -> None:
        policy = RetryBudget() if policy is None else policy
        if not isinstance(policy, RetryBudget):
            raise ConfigError(f"Budgets needs a RetryBudget, got {policy!r}")
        self.policy = policy
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._single = TokenBucket(policy) if policy.per == "client" else None

    def bucket(self, key: str = "") -> TokenBucket:
        """The bucket for `key` (a host), created full on first use."""
        single = self._single
        if single is not None:
            return single
        found = self._buckets.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                found = self._buckets[key] = TokenBucket(self.policy)
                while len(self._buckets) > self.policy.max_keys:
                    self._buckets.popitem(last=False)
            return found

    def buckets(self) -> dict[str, TokenBucket]:
        """The buckets held now, by key (one entry, key ``""``, for a per-client budget)."""
        if self._single is not None:
            return {"": self._single}
        with self._lock:
            return dict(self._buckets)

    def __repr__(self) -> str:
        return f"Budgets({self.policy!r}, keys={len(self.buckets())})"
