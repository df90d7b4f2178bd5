"""The store's own breaker: skip a failed store, back off, let exactly one caller probe."""

from __future__ import annotations

import random

import pytest

from sendguard import ConfigError, StoreRecovered, StoreUnavailableEvent, Telemetry
from sendguard._core.store import StoreGate, connect_redis
from sendguard.testing import FakeClock


def gate() -> tuple[StoreGate, FakeClock, list[object]]:
    clock = FakeClock()
    events: list[object] = []
    return (
        StoreGate(
            "redis", "breaker", Telemetry([events.append]), clock=clock, rng=random.Random(1)
        ),
        clock,
        events,
    )


def test_a_failure_closes_the_gate_for_a_jittered_backoff_then_one_probe():
    g, clock, events = gate()
    assert g.available()
    g.failed(ConnectionError("refused"))
    assert g.is_down
    assert not g.available()
    event = events[0]
    assert isinstance(event, StoreUnavailableEvent)
    assert event.error == "ConnectionError: refused"
    assert 0.25 <= event.retry_in <= 0.5
    clock.advance(event.retry_in)
    assert g.available()  # the probe
    assert not g.available()  # everyone else keeps skipping while it runs
    g.succeeded()
    assert g.available()
    assert isinstance(events[-1], StoreRecovered)


def test_backoff_doubles_to_the_cap():
    g, clock, events = gate()
    waits = []
    for _ in range(10):
        g.failed(TimeoutError())
        ev = events[-1]
        assert isinstance(ev, StoreUnavailableEvent)
        waits.append(ev.retry_in)
        clock.advance(ev.retry_in)
        assert g.available()
    assert all(w <= 30.0 for w in waits)
    assert waits[-1] >= 15.0  # reached the cap's range (cap 30, jitter on the upper half)
    assert waits[0] <= 0.5


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="base"):
        StoreGate("redis", "x", Telemetry([]), base=0)
    with pytest.raises(ConfigError, match="timeout"):
        connect_redis("redis://127.0.0.1:1/0", timeout=0)
