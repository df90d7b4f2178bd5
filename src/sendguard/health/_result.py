"""What a probe reports: a status, an observed value with its unit, a message, a duration.

Pure values, no I/O. `Thresholds` turns an observed number into a status, so every probe
judges its readings the same way (``Thresholds.above(0.8, 0.95)`` for a saturation,
``Thresholds.below(14, 3)`` for days left on a certificate).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sendguard._core.errors import ConfigError

__all__ = ["Detail", "ProbeResult", "Status", "Thresholds"]

Detail = float | int | str | bool | None
"""A value a probe reports beside its main observation (a count, an age, a reason)."""


class Status(enum.Enum):
    """A check's verdict, in the IETF health-check draft's words (``pass``, ``warn``, ``fail``)."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def severity(self) -> int:
        """0 for pass, 1 for warn, 2 for fail (what the status gauge reports)."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: Iterable[Status]) -> Status:
        """The most severe of `statuses` (PASS when there are none)."""
        return max(statuses, key=_SEVERITY.__getitem__, default=cls.PASS)


_SEVERITY = {Status.PASS: 0, Status.WARN: 1, Status.FAIL: 2}


def _finite(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{owner}.{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When an observed number turns a check to warn or fail.

    With `higher_is_worse` (the default) a value at or above `fail` fails and one at or
    above `warn` warns; otherwise at or below. Either bound may be None (never reached).
    """

    warn: float | None = None
    fail: float | None = None
    higher_is_worse: bool = True

    def __post_init__(self) -> None:
        for name in ("warn", "fail"):
            value = getattr(self, name)
            if value is not None:
                _finite("Thresholds", name, value)
        if self.warn is not None and self.fail is not None:
            wrong = self.warn > self.fail if self.higher_is_worse else self.warn < self.fail
            if wrong:
                word = "above" if self.higher_is_worse else "below"
                raise ConfigError(
                    f"Thresholds.warn={self.warn!r} must not be {word} fail={self.fail!r} "
                    f"(the warning comes first)"
                )

    @classmethod
    def above(cls, warn: float | None = None, fail: float | None = None) -> Thresholds:
        """Warn at `warn` or more, fail at `fail` or more (a saturation, a latency)."""
        return cls(warn, fail, higher_is_worse=True)

    @classmethod
    def below(cls, warn: float | None = None, fail: float | None = None) -> Thresholds:
        """Warn at `warn` or less, fail at `fail` or less (days left, traffic)."""
        return cls(warn, fail, higher_is_worse=False)

    def judge(self, value: float) -> Status:
        """The status of `value` (a NaN fails: a reading that means nothing is no pass)."""
        if math.isnan(value):
            return Status.FAIL
        for bound, status in ((self.fail, Status.FAIL), (self.warn, Status.WARN)):
            if bound is not None and (value >= bound if self.higher_is_worse else value <= bound):
                return status
        return Status.PASS


def _frozen(details: Mapping[str, Detail]) -> Mapping[str, Detail]:
    return MappingProxyType(dict(details))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One reading of one probe.

    `observed_value` and `observed_unit` are the draft's ``observedValue`` and
    ``observedUnit`` (units as UCUM codes: ``ms``, ``s``, ``d``, ``%``, ``By``);
    `measurement` names what was measured (the check's key is ``<probe>:<measurement>``);
    `details` carries further readings. The registry fills in `duration` (seconds the
    check took), `time` (epoch seconds when it finished) and `checked_at` (the monotonic
    clock then); a probe leaves them at 0.
    """

    status: Status
    message: str = ""
    observed_value: Detail = None
    observed_unit: str | None = None
    measurement: str = "status"
    details: Mapping[str, Detail] = field(default_factory=dict)
    duration: float = 0.0
    time: float = 0.0
    checked_at: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.status, Status):
            raise ConfigError(f"ProbeResult.status must be a Status, got {self.status!r}")
        object.__setattr__(self, "details", _frozen(self.details))

    @classmethod
    def passing(cls, message: str = "", **fields: Any) -> ProbeResult:
        """A passing result."""
        return cls(Status.PASS, message, **fields)

    @classmethod
    def warning(cls, message: str, **fields: Any) -> ProbeResult:
        """A warning result; `message` says what is wrong."""
        return cls(Status.WARN, message, **fields)

    @classmethod
    def failing(cls, message: str, **fields: Any) -> ProbeResult:
        """A failing result; `message` says what is wrong."""
        return cls(Status.FAIL, message, **fields)

    def stamped(self, *, duration: float, time: float, checked_at: float) -> ProbeResult:
        """A copy with the registry's timings filled in."""
        return dataclasses.replace(self, duration=duration, time=time, checked_at=checked_at)

    def age(self, now: float) -> float:
        """Seconds since the check finished, on the monotonic clock reading `now`."""
        return max(0.0, now - self.checked_at)
