"""Process bodies for the shared rate-limit tests (spawned; must be importable)."""

from __future__ import annotations

from multiprocessing.synchronize import Barrier
from typing import Any

from sendguard.ratelimit import Limit, RateLimiter, parse_rates


def hammer(url: str, tries: int, ready: Barrier, out: Any) -> None:
    """Check `tries` requests for one shared key; report how many were admitted."""
    limiter = RateLimiter(url, timeout=2.0)
    limits = [Limit("route:POST /v1/emails", r) for r in parse_rates("20/hour")]
    ready.wait()
    out.put(sum(limiter.check("acct_1", limits).allowed for _ in range(tries)))
    limiter.close()
