"""What clients receive: RateLimit fields, Retry-After and problem+json bodies (429 and 503)."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Breaker, Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.testing import FakeClock

clock = FakeClock(start=0.0)
slot_taken, release = asyncio.Event(), asyncio.Event()


async def emails(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def broken(request: Request) -> PlainTextResponse:
    return PlainTextResponse("database down", status_code=500)


async def export(request: Request) -> PlainTextResponse:
    slot_taken.set()
    await release.wait()
    return PlainTextResponse("export")


app = Starlette(
    routes=[Route("/v1/emails", emails), Route("/v1/broken", broken), Route("/v1/export", export)]
)
guard = Guard(
    baseline=RoutePolicy(limits="2/second;100/minute"),
    routes={
        "GET /v1/broken": RoutePolicy(breaker=Breaker.consecutive(1, open_jitter=0)),
        "GET /v1/export": RoutePolicy(bulkhead=Bulkhead(1)),
    },
    clock=clock,
)


def show(reply: httpx.Response) -> None:
    print(f"HTTP {reply.status_code}")
    for name in ("content-type", "retry-after", "ratelimit-policy", "ratelimit"):
        if name in reply.headers:
            print(f"{name}: {reply.headers[name]}")
    if reply.status_code in (429, 503):
        print(reply.text)
    print()


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        clock.advance(0.25)  # a quarter into the current second and minute
        await client.get("/v1/emails")
        show(await client.get("/v1/emails"))
        show(await client.get("/v1/emails"))

        await client.get("/v1/broken")  # a 500 trips this route's breaker
        show(await client.get("/v1/broken"))

        holder = asyncio.create_task(client.get("/v1/export"))
        await slot_taken.wait()
        show(await client.get("/v1/export"))
        release.set()
        await holder


asyncio.run(main())
