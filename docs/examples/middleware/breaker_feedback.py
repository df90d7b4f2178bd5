"""How route breakers learn from responses: 5xx and exceptions fail, slow responses count."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Breaker, Guard, Outcome, RoutePolicy, Window
from sendguard.asgi import GuardMiddleware
from sendguard.testing import FakeClock

clock = FakeClock()


async def answer(request: Request) -> PlainTextResponse:
    """Answers with the status asked for; ?crash raises, ?seconds=N takes N (fake) seconds."""
    if "crash" in request.query_params:
        raise RuntimeError("bug in the handler")
    clock.advance(float(request.query_params.get("seconds", 0)))
    return PlainTextResponse("", status_code=int(request.query_params.get("status", 200)))


def upstream_failures(status: object) -> Outcome:
    """Only gateway errors count against this route; a 500 from our own code does not."""
    return Outcome.FAILURE if status in (502, 503, 504) else Outcome.SUCCESS


app = Starlette(
    routes=[Route("/errors", answer), Route("/slow", answer), Route("/gateway", answer)]
)
guard = Guard(
    routes={
        "GET /errors": RoutePolicy(breaker=Breaker.consecutive(3)),
        "GET /slow": RoutePolicy(
            breaker=Breaker(
                failure_rate=None, slow_call_duration=2.0, window=Window.count(3), min_calls=3
            )
        ),
        "GET /gateway": RoutePolicy(
            breaker=Breaker.consecutive(2, classify_result=upstream_failures)
        ),
    },
    clock=clock,
)


async def main() -> None:
    transport = httpx.ASGITransport(app=GuardMiddleware(app, guard), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def codes(*urls: str) -> list[int]:
            return [(await client.get(url)).status_code for url in urls]

        # 5xx responses and exceptions are failures; a 4xx is the client's problem (success).
        print(
            "errors:", await codes("/errors?status=503", "/errors?status=404", "/errors?status=500")
        )
        print("errors:", await codes("/errors?crash", "/errors?status=502", "/errors"))
        # A response that takes 2 s or more is slow, even with a 200.
        print("slow:", await codes(*["/slow?seconds=3"] * 3, "/slow"))
        # classify_result receives the response status.
        print("gateway:", await codes(*["/gateway?status=500"] * 3, *["/gateway?status=502"] * 3))


asyncio.run(main())
