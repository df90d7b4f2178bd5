"""Rate limits, bulkheads and the request identity they count by.

Most apps use them through `sendguard.Guard` and the ASGI/WSGI middleware; the pieces
are here for direct use: `RateLimiter` (all of a request's limits in one store round
trip), `Bulkhead`/`BulkheadGate`, `Pacer` for outbound pacing, key functions and
trusted-proxy client addresses. See docs/ratelimit.md.
"""

from sendguard._core.errors import BulkheadFull, RateLimited
from sendguard.ratelimit._backends import LimitBackend, LimitsLibraryBackend, MemoryLimitBackend
from sendguard.ratelimit._bulkhead import Bulkhead, BulkheadGate
from sendguard.ratelimit._headers import problem_body, ratelimit_fields, retry_after_value
from sendguard.ratelimit._limiter import Decision, Limit, OnStoreFailure, RateLimiter, open_backend
from sendguard.ratelimit._pacer import Pacer
from sendguard.ratelimit._rates import Rate, parse_rates
from sendguard.ratelimit._request import (
    HeaderKey,
    KeyFunction,
    RequestInfo,
    TrustedProxies,
    by_api_key,
    by_client_ip,
    by_header,
    resolve_client_ip,
)
from sendguard.ratelimit._window import Counts, LimitState

__all__ = [
    "Bulkhead",
    "BulkheadFull",
    "BulkheadGate",
    "Counts",
    "Decision",
    "HeaderKey",
    "KeyFunction",
    "Limit",
    "LimitBackend",
    "LimitState",
    "LimitsLibraryBackend",
    "MemoryLimitBackend",
    "OnStoreFailure",
    "Pacer",
    "Rate",
    "RateLimited",
    "RateLimiter",
    "RequestInfo",
    "TrustedProxies",
    "by_api_key",
    "by_client_ip",
    "by_header",
    "open_backend",
    "parse_rates",
    "problem_body",
    "ratelimit_fields",
    "resolve_client_ip",
    "retry_after_value",
]
