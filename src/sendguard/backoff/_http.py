"""Which HTTP requests may be retried, and on what: pure rules, no HTTP library needed.

A request may be retried when its method is idempotent (GET, HEAD, PUT, DELETE,
OPTIONS, TRACE) or when it carries an ``Idempotency-Key`` header (so a POST or PATCH
that reaches the server twice is applied once). It is retried on 429, 502, 503 and 504
answers and on transport errors that say the server did not answer (connect errors,
timeouts, a dropped connection).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "error_reason",
    "may_retry",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
"""Methods that may be sent twice with the effect of once (RFC 9110, section 9.2.2)."""
RETRY_STATUSES = frozenset({429, 502, 503, 504})
"""Answers that say "not now" rather than "no": too many requests, bad gateway,
unavailable, gateway timeout."""
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The header that makes a POST or PATCH safe to retry (IETF draft
``draft-ietf-httpapi-idempotency-key-header``): the server applies a key once."""

_reasons: dict[type[BaseException], str] = {}
_MAX_REASONS = 512


def may_retry(
    method: str, headers: Mapping[str, str], methods: frozenset[str] = IDEMPOTENT_METHODS
) -> bool:
    """True if a request with `method` and `headers` is safe to send more than once."""
    if method.upper() in methods:
        return True
    return _has_key(headers)


def _has_key(headers: Mapping[str, str]) -> bool:
    value = headers.get(IDEMPOTENCY_HEADER)
    if value is None and not hasattr(headers, "multi_items"):  # a plain, case-sensitive dict
        lower = IDEMPOTENCY_HEADER.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return bool(value and value.strip())


def error_reason(error: BaseException) -> str:
    """A short, bounded name for what failed: ``ConnectError`` -> ``connect_error``."""
    kind = type(error)
    found = _reasons.get(kind)
    if found is None:
        name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", kind.__name__)
        found = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()
        if len(_reasons) < _MAX_REASONS:
            _reasons[kind] = found
    return found
