"""The ASGI and WSGI endpoints: liveness, readiness from memory, health+json, 200/503."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from sendguard.health import (
    CONTENT_TYPE,
    FunctionProbe,
    HealthRegistry,
    ProbeResult,
    Status,
    asgi_app,
    wsgi_app,
)

Answer = tuple[int, dict[str, str], bytes]


def call_asgi(app: Any, path: str, method: str = "GET", root_path: str = "") -> Answer:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "root_path": root_path,
             "headers": []}  # fmt: skip
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], sent[1]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body["body"]


def call_wsgi(app: Any, path: str, method: str = "GET") -> Answer:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method}, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


@pytest.fixture
def state() -> dict[str, Status]:
    return {"db": Status.PASS}


@pytest.fixture
def registry(state) -> HealthRegistry:
    probe = FunctionProbe(lambda: ProbeResult(state["db"], f"db {state['db'].value}"), "db")
    made = HealthRegistry([probe], interval=60, hooks=[])
    made.check_now()
    return made


async def inner_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"static 200"})


def inner_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"static 200"]


@pytest.mark.parametrize("call", [call_asgi, call_wsgi], ids=["asgi", "wsgi"])
def test_readiness_says_200_then_503_from_the_cache(registry, state, call) -> None:
    app = (asgi_app if call is call_asgi else wsgi_app)(registry, start=False)
    status, headers, body = call(app, "/readyz")
    assert status == 200
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["cache-control"] == "no-store"
    assert json.loads(body)["checks"]["db:status"][0]["status"] == "pass"
    state["db"] = Status.FAIL
    assert call(app, "/readyz")[0] == 200  # nothing ran: answered from memory
    registry.check_now()
    status, _, body = call(app, "/readyz")
    assert status == 503
    assert json.loads(body)["output"] == "fail: db: db fail"


@pytest.mark.parametrize("call", [call_asgi, call_wsgi], ids=["asgi", "wsgi"])
def test_liveness_never_consults_a_dependency(registry, state, call) -> None:
    state["db"] = Status.FAIL
    registry.check_now()
    app = (asgi_app if call is call_asgi else wsgi_app)(registry, start=False)
    status, _, body = call(app, "/livez")
    assert (status, json.loads(body)) == (200, {"status": "pass"})


@pytest.mark.parametrize("call", [call_asgi, call_wsgi], ids=["asgi", "wsgi"])
def test_other_paths_reach_the_wrapped_app_or_404(registry, call) -> None:
    wrapped: Any
    alone: Any
    if call is call_asgi:
        wrapped, alone = asgi_app(registry, inner_asgi, start=False), asgi_app(registry)
    else:
        wrapped, alone = wsgi_app(registry, inner_wsgi, start=False), wsgi_app(registry)
    assert call(wrapped, "/healthz")[::2] == (200, b"static 200")
    assert call(alone, "/healthz")[0] == 404


@pytest.mark.parametrize("call", [call_asgi, call_wsgi], ids=["asgi", "wsgi"])
def test_head_has_no_body_and_post_is_refused(registry, call) -> None:
    app = (asgi_app if call is call_asgi else wsgi_app)(registry, start=False)
    status, headers, body = call(app, "/readyz", "HEAD")
    assert (status, body) == (200, b"")
    status, headers, _ = call(app, "/readyz", "POST")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_asgi_paths_are_relative_to_the_mount_point(registry) -> None:
    app = asgi_app(registry, start=False)
    assert call_asgi(app, "/ops/readyz", root_path="/ops")[0] == 200


def test_first_request_starts_the_refresher(registry) -> None:
    app = wsgi_app(registry)
    assert not registry.running
    call_wsgi(app, "/readyz")
    assert registry.running
    registry.stop()


def test_lifespan_starts_and_stops_the_refresher(registry) -> None:
    app = asgi_app(registry)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []
    running: list[bool] = []

    async def receive() -> dict[str, Any]:
        running.append(registry.running)
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan"}, receive, send))  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert running == [False, True]
    assert not registry.running


def test_importing_health_imports_no_client_library() -> None:
    code = (
        "import sys, sendguard.health; "
        "print([m for m in ('psycopg', 'psycopg_pool', 'redis', 'httpx', 'cryptography') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
