"""A traffic floor: fail when fewer requests or sends than expected arrived in a window.

Incident #4's tracking links went dark and users noticed first; a drop in traffic was the
signal nobody watched. Count what should keep arriving (`TrafficCounter.record` per
request or per send) and let `TrafficFloorProbe` fail when the count over the window
falls below the floor. Until the counter has seen one whole window it cannot judge, so
it passes with "warming up".
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard.health._probe import BaseProbe
from sendguard.health._result import ProbeResult, Status

__all__ = ["TrafficCounter", "TrafficFloorProbe"]


def _positive(owner: str, name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(f"{owner}.{name} must be a positive number, got {value!r}")
    return float(value)


class TrafficCounter:
    """Events over a sliding window, kept in `buckets` slices (thread-safe, O(1) to record)."""

    def __init__(
        self, window: float = 300.0, *, buckets: int = 30, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.window = _positive("TrafficCounter", "window", window)
        if not isinstance(buckets, int) or not 1 <= buckets <= 3600:
            raise ConfigError(f"TrafficCounter.buckets must be 1 to 3600, got {buckets!r}")
        self.clock = clock
        self._width = self.window / buckets
        self._counts = [0.0] * buckets
        self._stamps = [-1] * buckets
        self._lock = threading.Lock()
        self.started = clock.monotonic()

    def _slot(self, now: float) -> tuple[int, int]:
        index = math.floor(now / self._width)
        return index, index % len(self._counts)

    def record(self, count: float = 1) -> None:
        """Count `count` events now."""
        index, slot = self._slot(self.clock.monotonic())
        with self._lock:
            if self._stamps[slot] != index:
                self._stamps[slot], self._counts[slot] = index, 0.0
            self._counts[slot] += count

    def total(self) -> float:
        """Events in the last window (to the precision of one bucket)."""
        index, _ = self._slot(self.clock.monotonic())
        size = len(self._counts)
        with self._lock:
            return sum(
                count
                for stamp, count in zip(self._stamps, self._counts, strict=True)
                if 0 <= index - stamp < size
            )

    @property
    def warmed_up(self) -> bool:
        """Whether the counter has been counting for a whole window."""
        return self.clock.monotonic() - self.started >= self.window


class TrafficFloorProbe(BaseProbe):
    """Fails when the count over the window is below `minimum`; warns below `warn`.

    `source` is a `TrafficCounter`, or a function returning the count over the window
    (a shared counter in Redis, a metrics query); a function is trusted to be warmed up.
    """

    def __init__(
        self,
        source: TrafficCounter | Callable[[], float],
        *,
        minimum: float,
        warn: float | None = None,
        name: str = "traffic",
        critical: bool = False,
        timeout: float = 1.0,
        unit: str = "{request}",
    ) -> None:
        super().__init__(name, critical=critical, timeout=timeout)
        self.minimum = _positive("TrafficFloorProbe", "minimum", minimum)
        self.warn = None if warn is None else _positive("TrafficFloorProbe", "warn", warn)
        if self.warn is not None and self.warn < self.minimum:
            raise ConfigError(
                f"TrafficFloorProbe.warn={warn!r} must not be below minimum={minimum!r}"
            )
        self.source = source
        self.unit = unit

    def check(self) -> ProbeResult:
        """Compare the count over the window with the floor."""
        if isinstance(self.source, TrafficCounter):
            count, ready = self.source.total(), self.source.warmed_up
            window = self.source.window
        else:
            count, ready, window = float(self.source()), True, math.nan
        per = "" if math.isnan(window) else f" in the last {window:g}s"
        if not ready:
            status, message = Status.PASS, "warming up: not a whole window counted yet"
        elif count < self.minimum:
            status = Status.FAIL
            message = f"only {count:g}{per}, below the floor of {self.minimum:g}"
        elif self.warn is not None and count < self.warn:
            status, message = Status.WARN, f"{count:g}{per}, below the expected {self.warn:g}"
        else:
            status, message = Status.PASS, ""
        return ProbeResult(
            status, message, observed_value=count, observed_unit=self.unit,
            measurement="throughput", details={"minimum": self.minimum, "warming_up": not ready},
        )  # fmt: skip
