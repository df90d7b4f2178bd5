"""Liveness and readiness endpoints for ASGI and WSGI, answering ``application/health+json``.

    app = health.asgi_app(registry, app)      # /livez and /readyz in front of any ASGI app
    application = health.wsgi_app(registry, application)   # the same for WSGI

- ``/livez`` is the process only: it answers 200 whenever the process can serve a request
  (restart me if I stop answering). It never consults a dependency, so a database
  outage cannot make an orchestrator restart every healthy worker.
- ``/readyz`` is the registry's verdict from memory: 200 for pass and warn, 503 for fail,
  with every check in the body. It does no I/O and adds no load to a struggling
  database however often it is polled.

Other paths go to the wrapped app (404 when there is none). The refresher starts with the
first request in each process (after a fork too), or at ASGI lifespan start-up when the
endpoints are the top-level app; until the first results are in, readiness is 503
("not checked yet").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from sendguard.health._registry import HealthRegistry
from sendguard.health._report import CONTENT_TYPE

__all__ = ["ASGIApp", "asgi_app", "wsgi_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_NOT_FOUND = b'{"status":"fail","output":"no such health endpoint"}'
_BAD_METHOD = b'{"status":"fail","output":"use GET or HEAD"}'


class _Answers:
    """Shared by both adapters: which path is which, and the status, headers and body."""

    __slots__ = ("_last", "_raw", "live_body", "paths", "registry", "start")

    def __init__(
        self, registry: HealthRegistry, liveness_path: str, readiness_path: str, start: bool
    ) -> None:
        self.registry = registry
        self.paths = {liveness_path: "live", readiness_path: "ready"}
        self.live_body = registry.liveness().to_json()
        self.start = start
        self._last: tuple[bytes, list[tuple[str, str]]] = (b"", [])
        self._raw: tuple[list[tuple[str, str]], list[tuple[bytes, bytes]]] = ([], [])

    def raw(self, headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
        """`headers` encoded for ASGI (the last answer's encoding is reused)."""
        last, raw = self._raw
        if headers is not last:
            raw = _encode(headers)
            self._raw = (headers, raw)
        return raw

    def answer(self, kind: str, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if method not in ("GET", "HEAD"):
            return 405, [*self._headers(_BAD_METHOD), ("allow", "GET, HEAD")], _BAD_METHOD
        if kind == "live":
            status, body = 200, self.live_body
        else:
            if self.start:
                self.registry.ensure_started()
            report, body = self.registry.readiness_document()
            status = report.http_status
        last_body, headers = self._last
        if body is not last_body:  # the report changed: build its headers once
            headers = self._headers(body)
            self._last = (body, headers)
        return status, headers, b"" if method == "HEAD" else body

    @staticmethod
    def _headers(body: bytes) -> list[tuple[str, str]]:
        return [
            ("content-type", CONTENT_TYPE),
            ("cache-control", "no-store"),
            ("content-length", str(len(body))),
        ]


def asgi_app(
    registry: HealthRegistry,
    app: ASGIApp | None = None,
    *,
    liveness_path: str = "/livez",
    readiness_path: str = "/readyz",
    start: bool = True,
) -> ASGIApp:
    """An ASGI app answering `liveness_path` and `readiness_path`, passing the rest to `app`.

    With `start` (the default) the registry's refresher is started by the first request
    (or by lifespan start-up when there is no `app`) and stopped at lifespan shutdown.
    """
    answers = _Answers(registry, liveness_path, readiness_path, start)

    async def health_endpoints(scope: Scope, receive: Receive, send: Send) -> None:
        kind = None
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :] or "/"
            kind = answers.paths.get(path)
        if kind is None:
            if app is not None:
                await app(scope, receive, send)
            elif scope["type"] == "lifespan":
                await _lifespan(registry, start, receive, send)
            elif scope["type"] == "http":
                await _respond(send, 404, _encode(_Answers._headers(_NOT_FOUND)), _NOT_FOUND)
            return
        status, headers, body = answers.answer(kind, scope.get("method", "GET"))
        await _respond(send, status, answers.raw(headers), body)

    return health_endpoints


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _respond(send: Send, status: int, raw: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(registry: HealthRegistry, start: bool, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if start:
                registry.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if start:
                registry.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def wsgi_app(
    registry: HealthRegistry,
    app: WSGIApplication | None = None,
    *,
    liveness_path: str = "/livez",
    readiness_path: str = "/readyz",
    start: bool = True,
) -> WSGIApplication:
    """A WSGI app answering `liveness_path` and `readiness_path`, passing the rest to `app`.

    With `start` the registry's refresher is started by the first request in each process.
    """
    answers = _Answers(registry, liveness_path, readiness_path, start)

    def health_endpoints(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        kind = answers.paths.get(environ.get("PATH_INFO", "") or "/")
        if kind is None:
            if app is not None:
                return app(environ, start_response)
            status, headers, body = 404, _Answers._headers(_NOT_FOUND), _NOT_FOUND
        else:
            status, headers, body = answers.answer(kind, environ.get("REQUEST_METHOD", "GET"))
        start_response(f"{status} {_REASONS.get(status, '')}".rstrip(), headers)
        return [body]

    return health_endpoints
