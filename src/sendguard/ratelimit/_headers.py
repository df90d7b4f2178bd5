"""What a client is told: RateLimit fields, Retry-After and problem+json bodies.

The fields follow draft-ietf-httpapi-ratelimit-headers (version 11): every guarded
response carries ``RateLimit-Policy`` (each limit's quota ``q`` and window ``w``) and
``RateLimit`` (each limit's remaining ``r`` and seconds to reset ``t``), as Structured
Field lists of strings with parameters.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence

from sendguard.ratelimit._limiter import Decision, Limit

__all__ = [
    "policy_value",
    "problem_body",
    "ratelimit_fields",
    "ratelimit_value",
    "retry_after_value",
]


def _policy_item(limit: Limit) -> str:
    return f'"{limit.name}";q={limit.rate.amount};w={math.ceil(limit.rate.seconds)}'


@functools.lru_cache(maxsize=4096)
def policy_value(limits: tuple[Limit, ...]) -> str:
    """The ``RateLimit-Policy`` value of a set of limits (the same for every request)."""
    return ", ".join(_policy_item(limit) for limit in limits)


def ratelimit_value(decision: Decision) -> str:
    """The ``RateLimit`` value: each limit's remaining ``r`` and seconds to reset ``t``."""
    ceil = math.ceil
    return ", ".join(
        [
            f'"{limit.name}";r={s.remaining};t={ceil(s.reset)}'
            for limit, s in zip(decision.limits, decision.states, strict=True)
        ]
    )


def ratelimit_fields(decision: Decision, policy: str = "") -> list[tuple[str, str]]:
    """``RateLimit-Policy`` and ``RateLimit`` for a decision (nothing when no limits).

    `policy` is the precomputed ``RateLimit-Policy`` value of the decision's limits.
    """
    if not decision.limits:
        return []
    policy = policy or policy_value(decision.limits)
    return [("RateLimit-Policy", policy), ("RateLimit", ratelimit_value(decision))]


def retry_after_value(seconds: float) -> str:
    """A ``Retry-After`` delta-seconds value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def problem_body(
    status: int,
    kind: str,
    title: str,
    detail: str,
    retry_after: float,
    extra: Sequence[tuple[str, object]] = (),
) -> bytes:
    """An RFC 9457 ``application/problem+json`` body."""
    doc: dict[str, object] = {
        "type": f"urn:sendguard:problem:{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "retry_after": max(1, math.ceil(retry_after)),
    }
    doc.update(extra)
    return json.dumps(doc, separators=(",", ":")).encode()
