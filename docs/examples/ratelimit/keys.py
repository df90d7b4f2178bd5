"""Who a request counts for: an account behind an API key, a header, or the client address."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.ratelimit import RequestInfo, by_client_ip


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/v1/emails", ok), Route("/archive/{slug}", ok)])

API_KEYS = {"sk_acme_1": "acct_acme", "sk_acme_2": "acct_acme", "sk_globex": "acct_globex"}


def by_account(request: RequestInfo) -> str | None:
    """The account of a known API key; None (count by client address) for anything else."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    account = API_KEYS.get(token)
    return f"account:{account}" if account else None


routes = {"GET /archive/{slug}": RoutePolicy(limits="3/minute", key=by_client_ip)}
guard = Guard(baseline=RoutePolicy(limits="2/minute"), key=by_account, routes=routes)
naive = Guard(baseline=RoutePolicy(limits="2/minute"), routes=routes)  # key: the raw header


async def codes(app: GuardMiddleware, ip: str, path: str, tokens: list[str]) -> list[int]:
    """One GET of `path` per token, from a client at `ip`."""
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [
            (await client.get(path, headers={"Authorization": f"Bearer {token}"})).status_code
            for token in tokens
        ]


async def main() -> None:
    guarded, unverified = GuardMiddleware(app, guard), GuardMiddleware(app, naive)
    print(
        "acme, two keys:",
        await codes(guarded, "192.0.2.1", "/v1/emails", ["sk_acme_1", "sk_acme_2", "sk_acme_1"]),
    )
    print("globex:", await codes(guarded, "192.0.2.1", "/v1/emails", ["sk_globex"]))
    made_up = [f"guess-{n}" for n in range(4)]
    print("made-up keys, by account:", await codes(guarded, "198.51.100.7", "/v1/emails", made_up))
    print(
        "made-up keys, raw header:", await codes(unverified, "198.51.100.7", "/v1/emails", made_up)
    )
    for ip in ("203.0.113.1", "203.0.113.2"):
        print(f"archive from {ip}:", await codes(guarded, ip, "/archive/a", ["sk_acme_1"] * 4))


asyncio.run(main())
