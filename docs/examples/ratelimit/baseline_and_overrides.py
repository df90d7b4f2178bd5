"""A baseline on every route, overrides for some, and counters kept apart per route."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Breaker, Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/archive/{slug}", ok),
        Route("/v1/emails/{id}", ok),
        Route("/v1/emails/{id}/analytics", ok),
    ]
)
guard = Guard(
    baseline=RoutePolicy(limits="3/minute", bulkhead=Bulkhead(20), breaker=Breaker.rate(0.5)),
    routes={
        # Only `limits` is set: the bulkhead and breaker still come from the baseline.
        "GET /v1/emails/{id}/analytics": RoutePolicy(limits="1/minute"),
        # Matches every method; listed patterns are tried most literal segments first.
        "* /v1/emails/{id}": RoutePolicy(limits="5/minute"),
    },
)

for route in ("GET /v1/emails/{id}/analytics", "DELETE /v1/emails/{id}", "GET /archive/{slug}"):
    policy = guard.policy_for(route)
    bulkhead = policy.bulkhead.max_concurrent if policy.bulkhead else None
    rates = [rate.label for rate in policy.rates or ()]
    print(f"{route}: limits={rates} bulkhead={bulkhead} breaker={policy.breaker is not None}")

# Without a framework template, a path is matched against the patterns; no match falls
# into its method's catch-all, so raw paths never become routes.
for method, path in (("GET", "/v1/emails/em_7/analytics"), ("PUT", "/v1/emails/em_7")):
    print(f"{method} {path} -> {guard.route_name(method, path)}")
print("GET /no/such/page ->", guard.route_name("GET", "/no/such/page"))


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        me = {"Authorization": "Bearer poller"}
        for paths in (
            ["/v1/emails/em_1/analytics", "/v1/emails/em_2/analytics"] * 2,
            ["/archive/a", "/archive/b", "/archive/c", "/archive/d"],
            ["/no/such/page", "/other/missing", "/robots.txt", "/x"],
        ):
            codes = [(await client.get(path, headers=me)).status_code for path in paths]
            print(f"{paths[0]} ...: {codes}")


asyncio.run(main())
