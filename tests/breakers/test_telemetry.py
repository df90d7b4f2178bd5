"""The default hook records OpenTelemetry metrics (read here through the real SDK)."""

from __future__ import annotations

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry
from sendguard.testing import FakeClock


@pytest.fixture(scope="module")
def reader() -> InMemoryMetricReader:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[dict[str, object], float]]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", 0)
                    found.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return found


def test_calls_transitions_rejections_and_state_are_metrics(reader):
    registry = BreakerRegistry(Breaker.consecutive(2), clock=FakeClock())
    breaker = registry.provider("otel-demo")
    for _ in range(5):
        breaker.call(lambda: None)
    empty: dict[str, int] = {}
    for _ in range(2):
        with pytest.raises(KeyError):
            breaker.call(lambda: empty["missing"])
    with pytest.raises(BreakerOpen):
        breaker.call(lambda: None)

    points = _points(reader)
    calls: dict[object, float] = {
        attrs["outcome"]: value
        for attrs, value in points["sendguard.breaker.calls"]
        if attrs["breaker"] == "provider:otel-demo"
    }
    assert calls["success"] == 5
    assert calls["failure"] == 2
    assert calls["rejected"] == 1
    transitions = [
        attrs
        for attrs, _ in points["sendguard.breaker.transitions"]
        if attrs["breaker"] == "provider:otel-demo"
    ]
    assert {"from_state": "closed", "to_state": "open"}.items() <= transitions[0].items()
    assert any(
        a["breaker"] == "provider:otel-demo" for a, _ in points["sendguard.breaker.rejections"]
    )
    states = [
        a["state"]
        for a, _ in points["sendguard.breaker.state"]
        if a["breaker"] == "provider:otel-demo"
    ]
    assert states == ["open"]


def test_store_outage_metrics_carry_bounded_attributes(reader):
    from sendguard.testing.servers import free_port

    registry = BreakerRegistry(store=f"redis://127.0.0.1:{free_port()}/0")
    registry.get("x").call(lambda: None)
    points = _points(reader)["sendguard.store.unavailable"]
    assert points
    for attrs, _ in points:
        assert set(attrs) == {"store", "guard", "error_type"}
        assert attrs["error_type"] == "ConnectionError"


def test_guard_decisions_and_refusals_are_metrics(reader):
    from sendguard import Guard, RoutePolicy
    from sendguard._guard import Refusal

    guard = Guard(baseline=RoutePolicy(limits="1/minute"), clock=FakeClock())
    request = guard.request("GET", "/otel-demo", {}, "192.0.2.9", template="/otel-demo")
    guard.leave(guard.enter(request), 200)
    with pytest.raises(Refusal):
        guard.enter(request)
    points = _points(reader)
    decisions = {
        attrs["decision"]: value
        for attrs, value in points["sendguard.guard.decisions"]
        if attrs["route"] == "GET /otel-demo"
    }
    assert decisions == {"admitted": 1, "limited": 1}
    refusals = [a for a, _ in points["sendguard.guard.refusals"] if a["route"] == "GET /otel-demo"]
    assert refusals == [{"route": "GET /otel-demo", "reason": "RateLimited"}]
