"""Two workers sharing rate limits and a bulkhead through Redis (run against a scratch Redis).

    SENDGUARD_STORE=redis://localhost:6379/0 python docs/examples/ratelimit/shared_redis.py

The two guards stand for two worker processes. The example deletes its keys at the end.
"""

import asyncio
import os

import httpx
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sendguard import Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware

URL = os.environ.get("SENDGUARD_STORE", "redis://localhost:6379/0")
export_started, finish_export = asyncio.Event(), asyncio.Event()


async def emails(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def export(request: Request) -> PlainTextResponse:
    export_started.set()
    await finish_export.wait()  # a long export, holding its bulkhead slot
    return PlainTextResponse("export done")


app = Starlette(routes=[Route("/v1/emails", emails), Route("/v1/exports/contacts", export)])


def worker() -> Guard:
    return Guard(
        URL,
        baseline=RoutePolicy(limits="10/second;5/minute"),
        # One export at a time across every worker; a slot lasts at most 60 s.
        routes={
            "GET /v1/exports/contacts": RoutePolicy(bulkhead=Bulkhead(1, shared=True, lease=60))
        },
    )


def script_runs(client: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


async def main() -> None:
    guard_a, guard_b = worker(), worker()
    a = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=GuardMiddleware(app, guard_a)), base_url="http://a"
    )
    b = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=GuardMiddleware(app, guard_b)), base_url="http://b"
    )
    me = {"Authorization": "Bearer acme"}
    redis_client = redis.Redis.from_url(URL, decode_responses=True)

    # The limits are shared: 5 a minute for this client, whichever worker serves it.
    print("worker a:", [(await a.get("/v1/emails", headers=me)).status_code for _ in range(3)])
    print("worker b:", [(await b.get("/v1/emails", headers=me)).status_code for _ in range(3)])

    # All of a request's limits are checked and counted by one script run: one round trip.
    before = script_runs(redis_client)
    await a.get("/v1/emails", headers={"Authorization": "Bearer globex"})
    await b.get("/v1/emails", headers={"Authorization": "Bearer globex"})
    print("script runs for 2 requests with 2 limits each:", script_runs(redis_client) - before)

    keys = sorted(str(k) for k in redis_client.scan_iter("sendguard:{rl:*"))
    for key in keys:
        print("key:", key, redis_client.type(key))
    tags = {key.split("}")[0] for key in keys}
    print("hash tags (one per client):", len(tags))

    # The bulkhead is shared too: while worker a runs an export, worker b refuses one.
    running = asyncio.create_task(a.get("/v1/exports/contacts", headers=me))
    await export_started.wait()
    refused = await b.get("/v1/exports/contacts", headers=me)
    print(
        "worker b, export:",
        refused.status_code,
        refused.json()["type"],
        refused.headers["retry-after"],
    )
    slots = [str(k) for k in redis_client.scan_iter("sendguard:{bulkhead:*")]
    print("leases held in Redis:", redis_client.zcard(slots[0]))
    finish_export.set()
    print("worker a, export:", (await running).status_code)
    print("worker b, export again:", (await b.get("/v1/exports/contacts", headers=me)).status_code)

    # Tidy up: close connections (in a server, the ASGI lifespan shutdown closes the
    # guard's), then delete the scratch keys.
    for closable in (a, b, guard_a, guard_b):
        await closable.aclose()
    redis_client.delete(*redis_client.scan_iter("sendguard:*"))
    redis_client.close()


asyncio.run(main())
