"""Rate limits shared through real Redis, Redis going away, and the middleware on real servers."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from werkzeug.serving import make_server

from sendguard import Breaker, Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.ratelimit import Limit, RateLimiter, parse_rates
from sendguard.testing.servers import free_port
from sendguard.wsgi import GuardWSGIMiddleware

from ._workers import hammer

ctx = multiprocessing.get_context("spawn")


def test_processes_sharing_redis_admit_exactly_the_limit(redis_url):
    procs_n, tries = 4, 15
    ready, out = ctx.Barrier(procs_n), ctx.Queue()
    procs = [
        ctx.Process(target=hammer, args=(redis_url, tries, ready, out)) for _ in range(procs_n)
    ]
    for p in procs:
        p.start()
    admitted = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    out.close()
    assert sum(admitted) == 20  # 60 tries against 20/hour, across four processes


def test_redis_going_away_keeps_limiting_in_process_then_comes_back(restartable_redis):
    from sendguard.testing import FakeClock

    clock = FakeClock()
    events: list[object] = []
    limiter = RateLimiter(restartable_redis.url, clock=clock, hooks=[events.append])
    limits = [Limit("route:GET /x", r) for r in parse_rates("3/minute")]
    assert limiter.check("k", limits).allowed
    assert limiter.shared

    restartable_redis.stop(cleanup=False)
    started = time.monotonic()
    answers = [limiter.check("k", limits) for _ in range(5)]
    assert time.monotonic() - started < 0.5  # one failed connect, then local decisions
    assert all(d.degraded for d in answers)
    assert [d.allowed for d in answers] == [True, True, True, False, False]  # local limit
    assert [type(e).__name__ for e in events] == ["StoreUnavailableEvent"]

    restartable_redis.start()
    clock.advance(60)  # past the store's backoff
    back = limiter.check("k", limits)
    assert not back.degraded
    assert limiter.shared
    assert [type(e).__name__ for e in events][-1] == "StoreRecovered"
    limiter.close()


def test_aclose_releases_the_asyncio_connection_the_loop_used(redis_url, redis_client):
    import asyncio

    from sendguard.ratelimit.redis_backend import RedisLimitBackend

    limiter = RateLimiter(redis_url)
    limits = [Limit("route:GET /aclose", r) for r in parse_rates("5/minute")]
    name = "sendguard-aclose-test"

    def ours() -> int:  # connections of this test's asyncio client, as Redis sees them
        return sum(1 for c in redis_client.client_list() if c.get("name") == name)

    async def main() -> None:
        assert (await limiter.acheck("k", limits)).allowed
        backend = limiter.backend
        assert isinstance(backend, RedisLimitBackend)
        client = backend._aclients.get()  # the loop's client, made by acheck
        await client.client_setname(name)
        assert ours() == 1
        await limiter.aclose()
        assert ours() == 0

    asyncio.run(main())


# --- the middleware on real servers -----------------------------------------------------


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def archive(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"archive {request.path_params['slug']}")


async def stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"chunk{i};".encode()
            await asyncio.sleep(0)

    return StreamingResponse(chunks(), media_type="text/plain")


def make_guard(store: str | None = None) -> Guard:
    return Guard(
        store,
        baseline=RoutePolicy(limits="100/minute", breaker=Breaker.rate(0.5), bulkhead=Bulkhead(8)),
        routes={
            "GET /archive/{slug}": RoutePolicy(limits="3/minute"),
            "GET /ping": RoutePolicy.exempt(),
        },
        key=lambda req: req.headers.get("authorization"),
        trusted_proxies=["10.0.0.0/8"],
        hooks=[],
    )


@pytest.fixture
def uvicorn_url(redis_url) -> Iterator[str]:
    app = Starlette(
        routes=[Route("/ping", ping), Route("/archive/{slug}", archive), Route("/stream", stream)]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            GuardMiddleware(app, make_guard(redis_url)),
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="on",
            proxy_headers=False,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.01)  # polling for readiness, bounded by the deadline
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_uvicorn_serves_limits_headers_streaming_and_exemptions(uvicorn_url):
    with httpx.Client(base_url=uvicorn_url) as client:
        statuses = [client.get("/archive/a", headers={"authorization": "k1"}) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[0].headers["ratelimit-policy"] == '"route-60s";q=3;w=60'
        assert statuses[2].headers["ratelimit"].startswith('"route-60s";r=0;')
        refused = statuses[3]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["status"] == 429
        assert client.get("/archive/a", headers={"authorization": "k2"}).status_code == 200
        ping = client.get("/ping")
        assert ping.status_code == 200
        assert "ratelimit" not in ping.headers
        streamed = client.get("/stream", headers={"authorization": "k3"})
        assert streamed.text == "chunk0;chunk1;chunk2;"
        assert "ratelimit" in streamed.headers


def test_a_spoofed_forwarded_for_from_an_untrusted_client_does_not_change_its_key(uvicorn_url):
    with httpx.Client(base_url=uvicorn_url) as client:
        codes = [
            client.get("/archive/b", headers={"x-forwarded-for": f"198.51.100.{i}"}).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 200, 429]  # keyed by the real peer, 127.0.0.1, every time
    # (uvicorn's own proxy_headers layer trusts 127.0.0.1 by default and would rewrite the
    # client address before sendguard sees it; the fixture turns it off, see the docs)


def test_a_real_flask_app_behind_the_wsgi_middleware():
    flask_app = Flask("emails")

    @flask_app.get("/v1/emails/<int:email_id>")
    def show(email_id: int) -> dict[str, int]:
        return {"id": email_id}

    @flask_app.get("/boom")
    def boom() -> tuple[str, int]:
        return "down", 500

    guard = Guard(
        baseline=RoutePolicy(breaker=Breaker.consecutive(2)),
        routes={"GET /v1/emails/{email_id}": RoutePolicy(limits="2/minute")},
        key=lambda req: req.client_ip,
        hooks=[],
    )
    flask_app.wsgi_app = GuardWSGIMiddleware(  # type: ignore[method-assign]
        flask_app.wsgi_app, guard, template=None
    )
    server = make_server("127.0.0.1", free_port(), flask_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with httpx.Client(base_url=base) as client:
            codes = [client.get(f"/v1/emails/{i}").status_code for i in (1, 2, 3)]
            assert codes == [200, 200, 429]  # one route, whatever the id
            assert client.get("/v1/emails/9").headers["retry-after"]
            # The outcome is recorded when the server closes the response (so a slow
            # streamed body counts as slow), which a threaded server may do just after
            # the client already sent its next request: allow that one request through.
            codes = [client.get("/boom").status_code for _ in range(5)]
            assert codes[:2] == [500, 500]
            assert codes[-1] == 503
            assert set(codes) == {500, 503}
    finally:
        server.shutdown()
        thread.join(timeout=10)
