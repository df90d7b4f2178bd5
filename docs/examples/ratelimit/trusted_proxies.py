"""Client addresses behind proxies: forwarding headers are believed only from trusted peers."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from sendguard import Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.ratelimit import by_client_ip


async def archive(request: Request) -> PlainTextResponse:
    return PlainTextResponse("archive")


app = Starlette(routes=[Route("/archive/{slug}", archive)])


def make_guard(trusted_proxies: list[str]) -> Guard:
    return Guard(
        baseline=RoutePolicy(limits="2/minute"),
        key=by_client_ip,
        trusted_proxies=trusted_proxies,  # addresses or CIDR ranges of your proxies
    )


ASGIApp = Callable[..., Coroutine[Any, Any, None]]


async def codes(app: ASGIApp, peer: str, forwarded_for: list[str]) -> list[int]:
    """One request per X-Forwarded-For value, all over connections from `peer`."""
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        replies = [
            await client.get("/archive/a", headers={"X-Forwarded-For": value})
            for value in forwarded_for
        ]
    return [reply.status_code for reply in replies]


async def main() -> None:
    guarded = GuardMiddleware(app, make_guard(["10.0.0.0/8"]))
    spoofed = [f"198.51.100.{n}" for n in range(4)]

    # A client that connects directly cannot choose its address: it is keyed by its peer.
    print("untrusted peer, spoofed header:", await codes(guarded, "203.0.113.9", spoofed))

    # Behind the trusted load balancer, the client is the rightmost untrusted address.
    # "6.6.6.6" was written by the client itself; the proxy appended the real address.
    chain = ["6.6.6.6, 192.0.2.44"] * 3
    print("via 10.0.0.2, client 192.0.2.44:", await codes(guarded, "10.0.0.2", chain))
    print("via 10.0.0.3, same client:", await codes(guarded, "10.0.0.3", ["192.0.2.44"]))

    # uvicorn's proxy_headers (on by default, trusting 127.0.0.1) rewrites the client
    # address before sendguard runs. Here a local program that is not a proxy sends
    # spoofed headers; uvicorn believes them, and every request gets a fresh budget.
    # (uvicorn types ASGI apps more narrowly than Starlette does, hence the ignore)
    behind_uvicorn = ProxyHeadersMiddleware(guarded, trusted_hosts="127.0.0.1")  # type: ignore[arg-type]
    print("uvicorn proxy_headers on:", await codes(behind_uvicorn, "127.0.0.1", spoofed))
    print("uvicorn proxy_headers off:", await codes(guarded, "127.0.0.1", spoofed))


asyncio.run(main())
