"""Limits shared by a group of routes, and an app-wide limit on top of every route's."""

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
        Route("/v1/exports/contacts", ok),
        Route("/v1/exports/events", ok),
        Route("/v1/emails/{id}", ok),
    ]
)
EXPORTS = RoutePolicy(limits="2/minute", group="exports")  # one budget for both routes
guard = Guard(
    baseline=RoutePolicy(limits="100/minute"),
    routes={"GET /v1/exports/contacts": EXPORTS, "GET /v1/exports/events": EXPORTS},
    app_limits="6/minute",  # every request of a client, whatever the route
    clock=FakeClock(start=0.0),  # fake time, so the printed times are exact
)


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        alice = {"Authorization": "Bearer alice"}
        for path in ("/v1/exports/contacts", "/v1/exports/events", "/v1/exports/contacts"):
            reply = await client.get(path, headers=alice)
            print(f"{path}: {reply.status_code} {reply.headers['ratelimit']}")

        emails = [await client.get(f"/v1/emails/em_{n}", headers=alice) for n in range(4)]
        print("emails:", [reply.status_code for reply in emails])
        refused = await client.get("/v1/emails/em_9", headers=alice)
        print("refused by:", refused.json()["detail"])

        bob = {"Authorization": "Bearer bob"}
        print("another client:", (await client.get("/v1/exports/events", headers=bob)).status_code)


asyncio.run(main())
