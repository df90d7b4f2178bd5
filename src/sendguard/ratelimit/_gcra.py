"""Spacing for outbound pacing: the generic cell rate algorithm (GCRA).

A rate of `amount` per `seconds` is an emission interval ``T = seconds / amount``. Each
key keeps one number, its theoretical arrival time (TAT). A send of cost `c` at `now`
moves it to ``max(TAT, now) + c * T`` and is allowed when that is at most ``burst * T``
ahead of `now`; otherwise it may go ``new_TAT - now - burst * T`` seconds later. With
``burst=1`` sends are spaced exactly `T` apart, whatever their timing; a window-based
limit would let paced traffic through at only half its rate.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard.ratelimit._rates import Rate

__all__ = ["MemoryPaceBackend", "next_arrival"]


def next_arrival(tat: float, now: float, rate: Rate, burst: int, cost: int) -> tuple[float, float]:
    """(the new TAT, seconds to wait before this send may go: 0 if now)."""
    interval = rate.seconds / rate.amount
    new_tat = max(tat, now) + cost * interval
    # a send costing more than the burst goes alone, once the schedule is clear
    return new_tat, max(0.0, new_tat - now - max(burst, cost) * interval)


class MemoryPaceBackend:
    """TATs in this process."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, *, max_keys: int = 100_000) -> None:
        self.label = "memory"
        self._now = clock.monotonic
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self.max_keys = max_keys

    def take(self, keys: Sequence[str], rates: Sequence[Rate], burst: int, cost: int) -> float:
        """Seconds to wait (0: the send may go now and was counted), all rates or none."""
        now = self._now()
        with self._lock:
            moves = [
                next_arrival(self._tat.get(k, now), now, r, burst, cost)
                for k, r in zip(keys, rates, strict=True)
            ]
            wait = max(w for _, w in moves)
            if wait == 0.0:
                for key, (tat, _) in zip(keys, moves, strict=True):
                    self._tat[key] = tat
                if len(self._tat) > self.max_keys:
                    self._tat = {k: t for k, t in self._tat.items() if t > now}
            return wait
