"""Quick start: probes, a registry answering from memory, and the two endpoints."""

import asyncio
import json
from typing import Any

from sendguard.health import FunctionProbe, HealthRegistry, ProbeResult, Status, asgi_app, probe

queue_depth = {"emails": 12}


@probe("smtp-relay", timeout=2.0)
def smtp_relay() -> bool:
    return True  # e.g. smtplib.SMTP("relay.internal", timeout=2).noop()[0] == 250


def backlog() -> ProbeResult:
    depth = queue_depth["emails"]
    if depth < 1000:
        return ProbeResult.passing(
            observed_value=depth, observed_unit="{job}", measurement="backlog"
        )
    return ProbeResult(Status.WARN, f"{depth} emails waiting", observed_value=depth,
                       observed_unit="{job}", measurement="backlog")  # fmt: skip


registry = HealthRegistry(
    [smtp_relay, FunctionProbe(backlog, "emails-queue", critical=False)], interval=5
)
report = registry.check_now()  # a running app calls registry.start() instead
print("readiness:", report.status.value, report.http_status)
print("checks:", sorted(json.loads(report.to_json())["checks"]))


async def get(app: Any, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path}, receive, send)
    return sent[0]["status"], sent[1]["body"]


app = asgi_app(registry, start=False)  # start=True (the default) starts the refresher
status, body = asyncio.run(get(app, "/readyz"))
print("/readyz:", status, json.loads(body)["status"])
queue_depth["emails"] = 5000
registry.check_now()
status, body = asyncio.run(get(app, "/readyz"))
print("/readyz:", status, json.loads(body)["output"])
status, body = asyncio.run(get(app, "/livez"))
print("/livez:", status, body.decode())
