"""A cost per request (a batch spends more of the budget) and exempt routes."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.testing import FakeClock


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/v1/emails", ok, methods=["POST"]),
        Route("/v1/emails/batch", ok, methods=["POST"]),
        Route("/healthz", ok),
        Route("/metrics", ok),
    ]
)
guard = Guard(
    baseline=RoutePolicy(limits="1/minute"),
    routes={
        # One budget of 30 a minute for sending; a batch request spends 10 of it.
        "POST /v1/emails": RoutePolicy(limits="30/minute", group="sending"),
        "POST /v1/emails/batch": RoutePolicy(limits="30/minute", group="sending", cost=10),
        # No limit, bulkhead or breaker, and no RateLimit fields.
        "GET /healthz": RoutePolicy.exempt(),
        "GET /metrics": RoutePolicy.exempt(),
    },
    clock=FakeClock(start=0.0),  # fake time, so the printed times are exact
)


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        me = {"Authorization": "Bearer acme"}
        for path in ["/v1/emails"] * 5 + ["/v1/emails/batch"] * 3:
            reply = await client.post(path, headers=me)
            print(f"POST {path}: {reply.status_code} {reply.headers['ratelimit']}")

        probes = [await client.get("/healthz") for _ in range(3)]
        print("healthz:", [r.status_code for r in probes], "ratelimit" in probes[0].headers)


asyncio.run(main())
