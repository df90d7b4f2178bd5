"""When the shared store is away: limit in process ("local"), admit ("allow") or refuse ("deny")."""

import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Event, Guard, RoutePolicy, StoreUnavailableEvent
from sendguard.asgi import GuardMiddleware
from sendguard.ratelimit import OnStoreFailure
from sendguard.testing import FakeClock
from sendguard.testing.servers import free_port


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/v1/emails", ok)])
NOBODY_LISTENS = f"redis://127.0.0.1:{free_port()}/0"  # a Redis that is down


def log_event(event: Event) -> None:
    if isinstance(event, StoreUnavailableEvent):
        print(f"  event: {event.guard} store {event.store} unavailable ({event.error_type})")


async def run(direction: OnStoreFailure) -> None:
    guard = Guard(
        NOBODY_LISTENS,
        baseline=RoutePolicy(limits="2/minute"),
        on_store_failure=direction,
        hooks=[log_event],
        clock=FakeClock(start=0.0),  # holds the store's backoff still; exact times
    )
    print(f"on_store_failure={direction!r}:")
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        started = time.monotonic()
        replies = [await client.get("/v1/emails") for _ in range(4)]
        took = time.monotonic() - started
    print(
        "  statuses:",
        [r.status_code for r in replies],
        "| RateLimit:",
        replies[0].headers.get("ratelimit", "-"),
    )
    print(f"  shared store in use: {guard.limiter.shared}; 4 requests in under 0.5 s: {took < 0.5}")
    await guard.aclose()


asyncio.run(run("local"))
asyncio.run(run("allow"))
asyncio.run(run("deny"))
