"""What a server says about when to come back: Retry-After and the RateLimit ``t`` value.

Pure parsing, no HTTP library needed. A response is anything with ``status_code`` and
``headers`` (httpx, requests, a test double); an exception may carry one in
``.response`` (`httpx.HTTPStatusError`, `requests.HTTPError`) or say ``retry_after``
itself. Every parser returns None for what it cannot read: a malformed header is
ignored, never raised, because a bad header must not break the request that carried it.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["hint_from", "parse_ratelimit_reset", "parse_retry_after", "response_of"]

_DELTA = re.compile(r"\d{1,12}(?:\.\d{1,6})?")
_MAX_FIELD = 256
"""Longer header values are not parsed at all (no valid one comes close)."""
_ITEM_PARAM = re.compile(r";\s*([a-z][a-z0-9_\-.*]*)\s*=\s*([^;]*)")


def parse_retry_after(value: object, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait, or None if it is malformed.

    Accepts delta-seconds (``120``; a fraction such as ``1.5`` too) and HTTP dates
    (``Wed, 21 Oct 2015 07:28:00 GMT``, compared with `now`, epoch seconds, default the
    wall clock). A date in the past gives 0. Negative numbers, garbage, NaN and
    overlong values give None.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or len(value) > _MAX_FIELD:
        return None
    text = value.strip()
    if _DELTA.fullmatch(text):
        return float(text)
    try:
        parts = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parts is None:
        return None
    if parts[9] is None:  # no zone (asctime): HTTP dates are always GMT
        parts = (*parts[:9], 0)
    try:
        when = email.utils.mktime_tz(parts)
    except (OverflowError, ValueError):
        return None
    wall = time.time() if now is None else now
    return max(0.0, float(when) - wall)


def parse_ratelimit_reset(value: object) -> float | None:
    """Seconds until an exhausted quota resets, from an IETF ``RateLimit`` field.

    The field lists policies with parameters (``"default";r=0;t=30, "burst";r=5;t=1``);
    ``r`` is the quota left and ``t`` the seconds until it resets. The answer is the
    largest ``t`` among the policies with nothing left (``r=0``), or None if none is
    exhausted or the field cannot be read.
    """
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str) or len(value) > _MAX_FIELD:
        return None
    waits: list[float] = []
    for item in _split_items(value):
        params = {k: v.strip() for k, v in _ITEM_PARAM.findall(item.lower())}
        remaining, reset = params.get("r"), params.get("t")
        if remaining is None or reset is None:
            continue
        if not (remaining.isdigit() and _DELTA.fullmatch(reset)):
            continue
        if int(remaining) == 0:
            waits.append(float(reset))
    return max(waits) if waits else None


def _split_items(value: str) -> list[str]:
    """Split a structured-field list on commas that are not inside quoted strings."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return items


def _header(headers: Any, name: str) -> object:
    """A header from httpx/requests headers (case-insensitive) or a plain mapping."""
    try:
        found = headers.get(name)
    except Exception:
        return None
    if found is None and isinstance(headers, Mapping):
        lower = name.lower()
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == lower:
                return value
    return found


def response_of(subject: object) -> Any:
    """The response-like object `subject` is or carries (``.response``), else None."""
    if hasattr(subject, "status_code") and hasattr(subject, "headers"):
        return subject
    if isinstance(subject, BaseException):
        try:
            carried = getattr(subject, "response", None)
        except Exception:  # httpx raises when a request error has no response
            return None
        if hasattr(carried, "status_code") and hasattr(carried, "headers"):
            return carried
    return None


def hint_from(subject: object, now: float | None = None) -> float | None:
    """Seconds the server asked to wait, read from a response or an exception; else None.

    A numeric ``retry_after`` attribute (any sendguard `Rejected`) is taken as is; on a
    response, ``Retry-After`` comes first and then an exhausted RateLimit policy's ``t``.
    """
    own = getattr(subject, "retry_after", None)
    if isinstance(own, int | float) and not isinstance(own, bool):
        return float(own) if math.isfinite(own) and own >= 0 else None
    response = response_of(subject)
    if response is None:
        return None
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    hint = parse_retry_after(_header(headers, "Retry-After"), now)
    if hint is None:
        hint = parse_ratelimit_reset(_header(headers, "RateLimit"))
    return hint
