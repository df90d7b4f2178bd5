"""The sliding-window counter, as pure arithmetic shared by every backend.

Each limit keeps, per key, the count of its current fixed window and of the one before.
Each client's windows start at its own phase (a fraction of the window taken from the
digest of its key), so clients that are over their limits are not all admitted, nor
told to retry, at the same instant. The estimate of requests in the sliding window
ending now is
``previous * (1 - elapsed / W) + current``; a request of cost `c` is admitted when every
limit it is subject to satisfies ``estimate + c <= amount``, and then counts in each
limit's current window. Backends store the counts (in process, or in Redis by one Lua
script); what to tell the client (remaining, reset, retry-after) is computed here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from sendguard.ratelimit._rates import Rate

__all__ = ["Counts", "LimitState", "advance", "estimate", "state_of"]


class Counts(NamedTuple):
    """What a backend saw for one limit at the moment it decided."""

    previous: int
    current: int
    elapsed: float
    """Seconds since the current window began."""


class LimitState(NamedTuple):
    """One limit's answer for one request."""

    rate: Rate
    allowed: bool
    """Whether this limit had room for the request."""
    remaining: int
    """Cost units still available after this request (0 for a limit that refused it)."""
    reset: float
    """Seconds until the current window ends (the header's ``t``)."""
    retry_after: float
    """Seconds until this limit has room for a request of the same cost (0 if it has)."""


def advance(index: int, previous: int, current: int, now_index: int) -> tuple[int, int]:
    """Roll stored counts (kept at window `index`) forward to window `now_index`."""
    if now_index == index:
        return previous, current
    if now_index == index + 1:
        return current, 0
    return 0, 0


def estimate(rate: Rate, counts: Counts) -> float:
    """Requests in the sliding window ending now, by the counter's interpolation."""
    weight = max(0.0, 1.0 - counts.elapsed / rate.seconds)
    return counts.previous * weight + counts.current


def state_of(rate: Rate, counts: Counts, cost: int, admitted: bool) -> LimitState:
    """The client-facing state of `rate` for one request.

    `counts` are as seen before the request; `admitted` says whether the request was
    counted (under all its limits, or none). A limit that had room reports it even when
    another limit refused the request.
    """
    est = estimate(rate, counts)
    reset = max(0.0, rate.seconds - counts.elapsed)
    if admitted:
        return LimitState(rate, True, max(0, math.floor(rate.amount - est - cost)), reset, 0.0)
    if est + cost <= rate.amount:
        return LimitState(rate, True, max(0, math.floor(rate.amount - est)), reset, 0.0)
    return LimitState(rate, False, 0, reset, _retry_after(rate, counts, cost))


def _retry_after(rate: Rate, counts: Counts, cost: int) -> float:
    """Seconds until ``estimate + cost <= amount`` if no other request comes."""
    room = rate.amount - cost
    w, e = rate.seconds, counts.elapsed
    prev, curr = counts.previous, counts.current
    if room < 0:
        return w  # a cost above the whole limit never fits (refused at configuration)
    return _EPSILON + _exact_retry_after(prev, curr, e, w, room)


_EPSILON = 0.001
"""Added to every retry-after, so a client that waits exactly that long is admitted."""


def _exact_retry_after(prev: int, curr: int, e: float, w: float, room: int) -> float:
    if curr <= room and prev > 0:
        # inside this window the previous window's share decays linearly
        need = prev * (1 - e / w) + curr - room
        delta = need * w / prev
        if delta <= w - e:
            return max(0.0, delta)
    # in the next window the current count becomes the decaying previous one
    to_next = max(0.0, w - e)
    if curr <= room:
        return to_next
    return to_next + (curr - room) * w / curr
