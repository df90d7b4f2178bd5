"""Bulkheads: a cap on concurrent requests per route; the excess is shed at once, or waits."""

import asyncio
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware


async def report(request: Request) -> PlainTextResponse:
    await asyncio.sleep(0.3)  # holds a database connection for 300 ms
    return PlainTextResponse("report")


async def thumbnail(request: Request) -> PlainTextResponse:
    await asyncio.sleep(0.1)
    return PlainTextResponse("thumbnail")


app = Starlette(routes=[Route("/v1/reports/{id}", report), Route("/thumbnails/{id}", thumbnail)])
guard = Guard(
    routes={
        # At most 4 reports at once; the rest are refused straight away (503).
        "GET /v1/reports/{id}": RoutePolicy(bulkhead=Bulkhead(4)),
        # At most 2 thumbnails at once; others wait up to 1 s for a slot.
        "GET /thumbnails/{id}": RoutePolicy(bulkhead=Bulkhead(2, max_wait=1.0)),
    }
)


async def timed(client: httpx.AsyncClient, path: str) -> tuple[int, float, str]:
    started = time.monotonic()
    reply = await client.get(path)
    return reply.status_code, time.monotonic() - started, reply.headers.get("retry-after", "")


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # A burst of 20 concurrent report requests.
        burst = await asyncio.gather(*(timed(client, f"/v1/reports/{n}") for n in range(20)))
        served = [took for status, took, _ in burst if status == 200]
        shed = [(took, retry) for status, took, retry in burst if status == 503]
        print(f"burst: {len(served)} served, {len(shed)} shed with Retry-After {shed[0][1]}")
        print(
            "every shed request answered before the first served one:",
            max(t for t, _ in shed) < min(served),
        )

        # Four thumbnails at once: two run, two wait for the slots they free.
        waited = await asyncio.gather(*(timed(client, f"/thumbnails/{n}") for n in range(4)))
        print("thumbnails:", [status for status, _, _ in waited])
        print("waited for a slot:", sum(took > 0.15 for _, took, _ in waited))


asyncio.run(main())
