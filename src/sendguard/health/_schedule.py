"""When each probe runs: the registry's pure scheduling core (no threads, no I/O).

Each probe is due every `interval` seconds. A probe is never started twice at once: if
its previous check is still running when it is due again, the schedule says so (the
registry then records a failure, "still running"), so a hanging dependency costs one
thread, not one per interval. A check still running at its deadline is given up on
once; whatever it returns later is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Due", "Schedule"]


@dataclass(slots=True)
class _Slot:
    interval: float
    timeout: float
    next_due: float = -math.inf
    started: float | None = None
    deadline: float | None = None
    gave_up: bool = False


@dataclass(frozen=True, slots=True)
class Due:
    """What is due now: probes to start, and probes due again while still running."""

    start: tuple[str, ...]
    hung: tuple[tuple[str, float], ...] = field(default=())
    """(name, seconds the running check has taken so far)."""


class Schedule:
    """Due times, runs in flight and deadlines of a set of probes (not thread-safe)."""

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    def add(self, name: str, *, interval: float, timeout: float) -> None:
        """Schedule `name` every `interval` seconds (due at once), given up on after `timeout`."""
        self._slots[name] = _Slot(interval, timeout)

    def __contains__(self, name: object) -> bool:
        return name in self._slots

    def in_flight(self, name: str) -> bool:
        """Whether a check of `name` has started and not finished."""
        return self._slots[name].started is not None

    def deadline(self, name: str) -> float | None:
        """When the running check of `name` is given up on (None: not running, or given up)."""
        slot = self._slots[name]
        return None if slot.started is None or slot.gave_up else slot.deadline

    def _begin(self, slot: _Slot, now: float) -> None:
        slot.started, slot.deadline, slot.gave_up = now, now + slot.timeout, False

    def due(self, now: float) -> Due:
        """Claim the probes due at `now`: start those idle, report those still running."""
        start: list[str] = []
        hung: list[tuple[str, float]] = []
        for name, slot in self._slots.items():
            if slot.next_due > now:
                continue
            following = slot.next_due + slot.interval
            slot.next_due = following if following > now else now + slot.interval
            if slot.started is None:
                self._begin(slot, now)
                start.append(name)
            else:
                hung.append((name, now - slot.started))
        return Due(tuple(start), tuple(hung))

    def force(self, now: float) -> tuple[str, ...]:
        """Start every probe not running now (a check on demand); each is next due an
        interval later."""
        started: list[str] = []
        for name, slot in self._slots.items():
            if slot.started is None:
                self._begin(slot, now)
                slot.next_due = now + slot.interval
                started.append(name)
        return tuple(started)

    def expired(self, now: float) -> tuple[str, ...]:
        """Running checks past their deadline and not yet given up on (now given up on)."""
        late: list[str] = []
        for name, slot in self._slots.items():
            running = slot.started is not None and not slot.gave_up
            if running and slot.deadline is not None and slot.deadline <= now:
                slot.gave_up = True
                late.append(name)
        return tuple(late)

    def finished(self, name: str) -> bool:
        """Mark `name`'s check finished; True if its result counts (it was not given up on)."""
        slot = self._slots[name]
        counted = slot.started is not None and not slot.gave_up
        slot.started, slot.deadline, slot.gave_up = None, None, False
        return counted

    def next_wakeup(self) -> float:
        """The earliest due time or pending deadline (infinity with nothing scheduled)."""
        times = [slot.next_due for slot in self._slots.values()]
        times += [
            slot.deadline
            for slot in self._slots.values()
            if slot.deadline is not None and not slot.gave_up
        ]
        return min(times, default=math.inf)
