"""Quick start: a baseline limit on every route, a stricter one on the expensive route."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from sendguard import Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware


async def archive(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"archive {request.path_params['slug']}")


async def analytics(request: Request) -> JSONResponse:
    return JSONResponse({"opens": 3, "clicks": 1})


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/archive/{slug}", archive),
        Route("/v1/emails/{id}/analytics", analytics),
        Route("/healthz", healthz),
    ]
)

guard = Guard(
    # Every route: 100 requests a minute per client, at most 20 running at once.
    baseline=RoutePolicy(limits="100/minute", bulkhead=Bulkhead(20)),
    routes={
        # The expensive route: 2 a second and 10 a minute per client, 4 at once in all.
        "GET /v1/emails/{id}/analytics": RoutePolicy(
            limits="2/second;10/minute", bulkhead=Bulkhead(4)
        ),
        # Health checks are never limited.
        "GET /healthz": RoutePolicy.exempt(),
    },
)
guarded_app = GuardMiddleware(app, guard)  # serve this one: uvicorn module:guarded_app


async def main() -> None:
    transport = httpx.ASGITransport(app=guarded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        poller = {"Authorization": "Bearer key-of-the-web-app"}
        replies = [await client.get("/v1/emails/em_1/analytics", headers=poller) for _ in range(5)]
        print("analytics:", [r.status_code for r in replies])
        refused = replies[-1]
        print("refused:", refused.headers["content-type"], refused.json()["title"])
        print("Retry-After:", refused.headers["retry-after"])
        print("RateLimit-Policy:", refused.headers["ratelimit-policy"])
        print("RateLimit:", refused.headers["ratelimit"])

        # The archive is another route with its own counters: the poller is still served,
        # and so is every other client.
        mine = await client.get("/archive/spring-sale", headers=poller)
        theirs = await client.get("/archive/spring-sale", headers={"Authorization": "Bearer b"})
        print("archive:", mine.status_code, theirs.status_code, mine.headers["ratelimit"])

        health = await client.get("/healthz")
        print("healthz:", health.status_code, "ratelimit" in health.headers)


asyncio.run(main())
