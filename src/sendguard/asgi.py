"""Pure ASGI middleware: `GuardMiddleware(app, guard)` in front of any ASGI app.

Non-HTTP scopes (websockets, lifespan) pass straight through. Nothing per request is
kept on the middleware. Refused requests get 429 or 503 with ``Retry-After``, the
RateLimit fields and an ``application/problem+json`` body, without reaching the app.
Admitted requests get the RateLimit fields added to their response start; the body is
passed through untouched, so streaming responses stream. The route's breaker learns the
response status (5xx is a failure) and how long the whole response took.

Route templates come from the app when it can say (Starlette and FastAPI routes, found
by matching the scope against the app's own routes); otherwise from the guard's
patterns. The raw path never becomes a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from sendguard._guard import Guard, Refusal
from sendguard._route_policy import BoundRoute
from sendguard.ratelimit._request import HeaderKey

__all__ = ["GuardMiddleware", "ScopeHeaders", "starlette_template"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ScopeHeaders(Mapping[str, str]):
    """An ASGI scope's headers as a read-only mapping, decoded only when looked at.

    Names are matched case-insensitively (give them in lower case); a repeated header
    gives its first value.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def get(self, key: str, default: Any = None) -> Any:  # the one call key functions make
        wanted = key.encode("latin-1")
        for name, value in self._raw:
            if name == wanted or name.lower() == wanted:
                return value.decode("latin-1")
        return default

    def __getitem__(self, key: str) -> str:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return str(found)

    def _all(self) -> dict[str, str]:
        if self._decoded is None:
            decoded: dict[str, str] = {}
            for name, value in self._raw:
                decoded.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            self._decoded = decoded
        return self._decoded

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def _find_routes(app: object) -> list[Any] | None:
    """The route list of a Starlette/FastAPI app, looking through wrapping middleware."""
    for _ in range(12):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        router = getattr(app, "router", None)
        if router is not None and isinstance(getattr(router, "routes", None), list):
            return list(router.routes)
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def starlette_template(routes: list[Any], scope: Scope) -> str | None:
    """The path template (``/v1/emails/{id}``) of the Starlette route that `scope` hits."""
    from starlette.routing import Match, Mount

    for route in routes:
        match, child = route.matches(scope)
        if match is not Match.FULL:
            continue
        if isinstance(route, Mount):
            inner = starlette_template(list(route.routes), {**scope, **child})
            prefix = route.path.rstrip("/")
            return f"{prefix}{inner}" if inner is not None else f"{prefix}/{{path:path}}"
        return str(getattr(route, "path", "")) or None
    return None


class GuardMiddleware:
    """Guards every HTTP request of `app` with `guard` (see module docs).

    On the ASGI lifespan shutdown event the guard's store connections are closed.
    """

    def __init__(
        self,
        app: ASGIApp,
        guard: Guard,
        *,
        template: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        self._template = template
        self._routes: list[Any] | bool | None = False  # False: not looked up yet
        self._bound: dict[tuple[str, str], BoundRoute] = {}
        self._raw_keys = not guard.trusted  # no proxies: a header key reads raw headers

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        async def receive_and_close() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                await self.guard.aclose()
            return message

        return receive_and_close

    def _template_of(self, scope: Scope) -> str | None:
        if self._template is not None:
            return self._template(scope)
        if self._routes is False:
            self._routes = _find_routes(self.app)
        if not isinstance(self._routes, list):
            return None
        return starlette_template(self._routes, scope)

    def _route_of(self, scope: Scope) -> BoundRoute:
        """The guarded route `scope` hits: found once per method and path, then cached
        (a user's `template` function is asked every time)."""
        method: str = scope["method"]
        path: str = scope["path"]
        if self._template is not None:
            guard = self.guard
            return guard.bound(guard.route_name(method, path, self._template(scope)))
        cache_key = (method, path)
        found = self._bound.get(cache_key)
        if found is None:
            guard = self.guard
            found = guard.bound(guard.route_name(method, path, self._template_of(scope)))
            if len(self._bound) >= 4096:  # bounded: paths carry ids
                self._bound.clear()
            self._bound[cache_key] = found
        return found

    def _key_of(self, bound: BoundRoute, scope: Scope) -> str:
        """The key the request counts under. A header key with no trusted proxies reads
        the raw headers; any other key function gets a `RequestInfo`."""
        guard = self.guard
        client = scope.get("client")
        peer = client[0] if client else None
        key = bound.key
        if type(key) is HeaderKey and self._raw_keys:
            return key.from_raw(scope["headers"]) or f"ip:{peer or 'unknown'}"
        headers = ScopeHeaders(scope["headers"])
        request = guard.request(scope["method"], scope["path"], headers, peer, route=bound.name)
        return guard.key_of(bound, request)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                receive = self._closing_on_shutdown(receive)
            await self.app(scope, receive, send)
            return
        guard = self.guard
        bound = self._route_of(scope)
        if bound.exempt:
            await self.app(scope, receive, send)
            return
        try:
            who = self._key_of(bound, scope) if bound.limits else ""  # no limit, no key
            admitted = await guard.aadmit(bound, who)
        except Refusal as refusal:
            await _send_refusal(send, refusal)
            return
        extra = admitted.asgi_headers()
        if not extra and bound.breaker is None:  # nothing to add, no status to learn
            try:
                await self.app(scope, receive, send)
            finally:
                if not guard.leave_fast(admitted, None):
                    await guard.aleave(admitted, None)
            return
        status: list[int] = []

        # A plain function handing back `send`'s own awaitable: no coroutine of its own
        # per message (this runs for every chunk of every admitted response).
        def send_with_headers(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            return send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except BaseException as error:
            await guard.aleave(admitted, status[0] if status else None, error)
            raise
        code = status[0] if status else None
        if not guard.leave_fast(admitted, code):
            await guard.aleave(admitted, code)


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    headers.append((b"content-length", str(len(refusal.body)).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": refusal.body})
