"""Telemetry: refusal events to your own hook, and OpenTelemetry metrics (read in memory)."""

import asyncio

import httpx
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Bulkhead, Event, Guard, OpenTelemetryHook, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.ratelimit import by_client_ip

# The application installs an OpenTelemetry SDK; sendguard only uses opentelemetry-api.
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
in_flight_seen: list[int] = []


def log_event(event: Event) -> None:
    """A hook: any callable taking one event. It runs outside locks; errors are logged."""
    print(f"event: {event.kind} {event}")


async def analytics(request: Request) -> PlainTextResponse:
    data = reader.get_metrics_data()  # read the gauge while this request holds its slot
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "sendguard.bulkhead.in_flight":
                    in_flight_seen.extend(getattr(p, "value", -1) for p in metric.data.data_points)
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/v1/emails/{id}/analytics", analytics)])
guard = Guard(
    baseline=RoutePolicy(limits="2/minute", bulkhead=Bulkhead(4)),
    key=by_client_ip,
    hooks=[OpenTelemetryHook(), log_event],  # a list replaces the default; keep OTel in it
)


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(3):
            await client.get("/v1/emails/em_1/analytics")
    print("in flight while the request ran:", in_flight_seen)

    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    print(f"metric: {metric.name} {attrs} = {getattr(point, 'value', None)}")


asyncio.run(main())
