"""Telemetry: events to your own hook, and OpenTelemetry metrics (read back in memory here)."""

import contextlib

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from sendguard import Event, OpenTelemetryHook
from sendguard.breakers import (
    Breaker,
    BreakerOpen,
    BreakerRegistry,
    BreakerRejected,
    BreakerTransition,
)

# The application installs an OpenTelemetry SDK; sendguard only uses opentelemetry-api.
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


def log_event(event: Event) -> None:
    """A hook: any callable taking one event. Called outside locks; errors are logged."""
    if isinstance(event, BreakerTransition):
        print(f"event: {event.breaker} {event.from_state} -> {event.to_state} ({event.reason})")
    elif isinstance(event, BreakerRejected):
        print(f"event: {event.breaker} rejected a call ({event.state})")


def smtp_down() -> str:
    raise ConnectionError("connection refused")


# hooks= replaces the default; list OpenTelemetryHook to keep the event metrics too.
registry = BreakerRegistry(Breaker.consecutive(2), hooks=[OpenTelemetryHook(), log_event])
breaker = registry.provider("smtp")
for _ in range(3):
    breaker.call(lambda: "250 OK")
for _ in range(2):
    with contextlib.suppress(ConnectionError):
        breaker.call(smtp_down)
with contextlib.suppress(BreakerOpen):
    breaker.call(lambda: "refused before it runs")

data = reader.get_metrics_data()
assert data is not None
for resource in data.resource_metrics:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            for point in metric.data.data_points:
                attrs = dict(point.attributes or {})
                if attrs.get("breaker") != "provider:smtp":
                    continue
                detail = attrs.get("outcome") or attrs.get("state") or attrs.get("to_state")
                print(f"metric: {metric.name} {detail} = {getattr(point, 'value', None)}")
