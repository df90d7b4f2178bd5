"""Sliding windows of call outcomes: the last N calls, or the last T seconds in ten buckets.

Both keep running totals so recording is O(1) and reading is O(1) (a time window clears
expired buckets lazily, at most ten per read).
"""

from __future__ import annotations

from sendguard.breakers._policy import Window

__all__ = ["CountWindow", "OutcomeWindow", "TimeWindow", "make_window"]

FAILED = 1
SLOW = 2


class CountWindow:
    """Outcomes of the last `size` recorded calls (a ring buffer)."""

    __slots__ = ("_i", "_ring", "failures", "size", "slow", "total")

    def __init__(self, size: int) -> None:
        self.size = size
        self._ring = bytearray(size)
        self._i = 0
        self.total = 0
        self.failures = 0
        self.slow = 0

    def record(self, code: int, now: float) -> None:
        """Add one call: `code` has bit FAILED and/or bit SLOW set."""
        i = self._i
        if self.total < self.size:
            self.total += 1
        else:
            old = self._ring[i]
            if old:
                self.failures -= old & FAILED
                self.slow -= (old & SLOW) >> 1
        self._ring[i] = code
        if code:
            self.failures += code & FAILED
            self.slow += (code & SLOW) >> 1
        i += 1
        self._i = 0 if i == self.size else i

    def record_successes(self, n: int, now: float) -> None:
        """Add `n` fast successes."""
        if n >= self.size:
            self.reset()
            self.total = self.size
            return
        ring = self._ring
        i = self._i
        for _ in range(n):
            if self.total < self.size:
                self.total += 1
            elif ring[i]:
                old = ring[i]
                self.failures -= old & FAILED
                self.slow -= (old & SLOW) >> 1
                ring[i] = 0
            i += 1
            if i == self.size:
                i = 0
        self._i = i

    def counts(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window."""
        return self.total, self.failures, self.slow

    def reset(self) -> None:
        """Forget every call."""
        self._ring = bytearray(self.size)
        self._i = self.total = self.failures = self.slow = 0


class TimeWindow:
    """Outcomes of the calls recorded in the last `seconds` seconds, in ten buckets."""

    BUCKETS = 10
    __slots__ = ("_f", "_head", "_s", "_t", "failures", "seconds", "slow", "total", "width")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.width = seconds / self.BUCKETS
        self._t = [0] * self.BUCKETS
        self._f = [0] * self.BUCKETS
        self._s = [0] * self.BUCKETS
        self._head: int | None = None
        self.total = self.failures = self.slow = 0

    def _advance(self, now: float) -> int:
        idx = int(now // self.width)
        head = self._head
        if head is None or idx - head >= self.BUCKETS:
            if self.total:
                self.reset()
            self._head = idx
        elif idx > head:
            for j in range(head + 1, idx + 1):
                slot = j % self.BUCKETS
                self.total -= self._t[slot]
                self.failures -= self._f[slot]
                self.slow -= self._s[slot]
                self._t[slot] = self._f[slot] = self._s[slot] = 0
            self._head = idx
        elif idx < head:  # a late result from before the head: count it in the head bucket
            return head % self.BUCKETS
        return idx % self.BUCKETS

    def record_successes(self, n: int, now: float) -> None:
        """Add `n` fast successes at time `now`."""
        slot = self._advance(now)
        self._t[slot] += n
        self.total += n

    def record(self, code: int, now: float) -> None:
        """Add one call at time `now`: `code` has bit FAILED and/or bit SLOW set."""
        slot = self._advance(now)
        self._t[slot] += 1
        self.total += 1
        if code:
            f = code & FAILED
            s = (code & SLOW) >> 1
            self._f[slot] += f
            self._s[slot] += s
            self.failures += f
            self.slow += s

    def counts(self, now: float) -> tuple[int, int, int]:
        """(calls, failures, slow calls) in the window ending at `now`."""
        self._advance(now)
        return self.total, self.failures, self.slow

    def reset(self) -> None:
        """Forget every call."""
        for arr in (self._t, self._f, self._s):
            for k in range(self.BUCKETS):
                arr[k] = 0
        self.total = self.failures = self.slow = 0
        self._head = None


OutcomeWindow = CountWindow | TimeWindow


def make_window(window: Window) -> OutcomeWindow:
    """The window object for a `Window` policy."""
    if window.kind == "count":
        return CountWindow(int(window.size))
    return TimeWindow(float(window.size))
