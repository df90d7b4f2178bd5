"""Telemetry: typed events delivered to hooks; the default hook records OpenTelemetry metrics.

A hook is any callable taking one event. Hooks run on the caller's thread after the
decision is made and outside any lock; an exception in a hook is logged and swallowed,
because observability must never fail the call it observes.

Per-call counts are not events (that would cost every call): guards keep counters and
the OpenTelemetry hook reads them through observable instruments when metrics are
collected. Events are for what is rare and worth a line in a log: transitions,
rejections, store outages.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from opentelemetry import metrics

__all__ = [
    "Event",
    "Hook",
    "OpenTelemetryHook",
    "StoreRecovered",
    "StoreUnavailableEvent",
    "Telemetry",
    "register_observable",
]

log = logging.getLogger("sendguard")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every telemetry event.

    `kind` is the metric-style name of the event; `attributes` names the fields that
    become metric attributes (bounded values only: names and states, never free text).
    """

    kind: ClassVar[str] = "sendguard.event"
    attributes: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, slots=True)
class StoreUnavailableEvent(Event):
    """The shared store failed; the guard now runs on local state for `retry_in` seconds."""

    kind: ClassVar[str] = "sendguard.store.unavailable"
    attributes: ClassVar[tuple[str, ...]] = ("store", "guard", "error_type")
    store: str
    guard: str
    error_type: str
    error: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class StoreRecovered(Event):
    """The shared store answered again after `down_for` seconds."""

    kind: ClassVar[str] = "sendguard.store.recovered"
    attributes: ClassVar[tuple[str, ...]] = ("store", "guard")
    store: str
    guard: str
    down_for: float


class Hook(Protocol):
    """Receives every event a guard emits."""

    def __call__(self, event: Event, /) -> None: ...


class Telemetry:
    """Fans events out to hooks.

    With `hooks` None, the OpenTelemetry hook is used. A list replaces it; include
    `OpenTelemetryHook()` in the list to keep the metrics as well.
    """

    __slots__ = ("hooks",)

    def __init__(self, hooks: Sequence[Hook] | None = None) -> None:
        self.hooks: tuple[Hook, ...] = (default_hook(),) if hooks is None else tuple(hooks)

    def emit(self, event: Event) -> None:
        """Deliver `event` to every hook; a failing hook is logged, never raised."""
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:
                log.exception("sendguard telemetry hook %r failed on %s", hook, event.kind)

    def with_hook(self, hook: Hook) -> Telemetry:
        """A copy that also delivers to `hook`."""
        return Telemetry((*self.hooks, hook))


# --- OpenTelemetry -------------------------------------------------------------------

_observables: dict[str, weakref.WeakSet[Any]] = {}
_obs_lock = threading.Lock()
_meter_state: dict[str, Any] = {}


def _meter() -> metrics.Meter:
    meter = _meter_state.get("meter")
    if meter is None:
        meter = metrics.get_meter("sendguard")
        _meter_state["meter"] = meter
    return meter


def register_observable(
    instrument: str,
    owner: object,
    description: str,
    unit: str,
    read: Callable[[Any], Iterable[tuple[float, dict[str, str]]]],
    *,
    counter: bool = True,
) -> None:
    """Report `read(owner)` through an observable instrument named `instrument`.

    Every owner registered under one name shares one instrument; owners are held weakly,
    so a garbage-collected breaker simply stops reporting.
    """
    with _obs_lock:
        owners = _observables.get(instrument)
        if owners is None:
            owners = weakref.WeakSet()
            _observables[instrument] = owners

            def callback(
                _options: metrics.CallbackOptions, _owners: weakref.WeakSet[Any] = owners
            ) -> Iterable[metrics.Observation]:
                for item in list(_owners):
                    for value, attrs in read(item):
                        yield metrics.Observation(value, attrs)

            if counter:
                _meter().create_observable_counter(
                    instrument, callbacks=[callback], unit=unit, description=description
                )
            else:
                _meter().create_observable_gauge(
                    instrument, callbacks=[callback], unit=unit, description=description
                )
        owners.add(owner)


_counters: dict[str, metrics.Counter] = {}


class OpenTelemetryHook:
    """Records each event as OpenTelemetry metrics through `opentelemetry-api`.

    Each event type maps to a counter named after `event.kind` (for example
    ``sendguard.breaker.transitions``), with the fields the event lists in `attributes`.
    Every instance shares the same instruments, so keeping the default hook next to
    your own is ``hooks=[OpenTelemetryHook(), mine]``. The API is a no-op until the
    application installs an SDK.
    """

    __slots__ = ()

    def __call__(self, event: Event, /) -> None:
        counter = _counters.get(event.kind)
        if counter is None:
            with _obs_lock:
                counter = _counters.get(event.kind)
                if counter is None:
                    counter = _meter().create_counter(event.kind, unit="{event}")
                    _counters[event.kind] = counter
        counter.add(1, {name: str(getattr(event, name)) for name in event.attributes})


_default: list[OpenTelemetryHook] = []


def default_hook() -> OpenTelemetryHook:
    """The process-wide OpenTelemetry hook (instruments are created once)."""
    if not _default:
        _default.append(OpenTelemetryHook())
    return _default[0]
