"""WSGI middleware: `GuardWSGIMiddleware(app, guard)` in front of any WSGI app.

The WSGI peer of `sendguard.asgi.GuardMiddleware`, with the same responses. Flask apps
give their route templates (``/v1/emails/<id>`` becomes ``/v1/emails/{id}``); Django
apps can pass ``template=sendguard.wsgi.django_template``; other apps are matched
against the guard's patterns. The breaker learns the status and the time until the
response body is closed, so slow streaming bodies count as slow calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sendguard._guard import Guard, Pass, Refusal

__all__ = ["GuardWSGIMiddleware", "django_template", "flask_template"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
_FLASK_PARAM = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def flask_template(app: Any) -> Callable[[Environ], str | None]:
    """A template finder for a Flask app (its url_map rule, in ``{name}`` form)."""

    def template(environ: Environ) -> str | None:
        try:
            rule, _ = app.url_map.bind_to_environ(environ).match(return_rule=True)
        except Exception:  # werkzeug raises NotFound / MethodNotAllowed: no template
            return None
        return _FLASK_PARAM.sub(r"{\1}", str(rule.rule))

    return template


def django_template(environ: Environ) -> str | None:
    """The route of a Django request (``/v1/emails/<int:id>/`` becomes ``/v1/emails/{id}/``)."""
    from django.urls import Resolver404, resolve

    try:
        match = resolve(environ.get("PATH_INFO", "/"))
    except Resolver404:
        return None
    route = getattr(match, "route", None)
    return "/" + _FLASK_PARAM.sub(r"{\1}", route).lstrip("/") if route else None


class _Guarded:
    """The response iterable: leaves the guard when the server closes it."""

    def __init__(
        self, body: Iterable[bytes], guard: Guard, admitted: Pass, status: list[int]
    ) -> None:
        self._body = body
        self._guard = guard
        self._admitted = admitted
        self._status = status
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except BaseException as error:
            self._finish(error)
            raise

    def _finish(self, error: BaseException | None) -> None:
        if not self._closed:
            self._closed = True
            self._guard.leave(self._admitted, self._status[0] if self._status else None, error)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish(None)


class GuardWSGIMiddleware:
    """Guards every request of a WSGI `app` with `guard`."""

    def __init__(
        self,
        app: WSGIApp,
        guard: Guard,
        *,
        template: Callable[[Environ], str | None] | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        if template is None and hasattr(app, "url_map"):
            template = flask_template(app)
        self._template = template

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        guard = self.guard
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        template = self._template(environ) if self._template is not None else None
        route = guard.route_name(method, path, template)
        if guard.exempt(route):
            return self.app(environ, start_response)
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        request = guard.request(method, path, headers, environ.get("REMOTE_ADDR"), route=route)
        try:
            admitted = guard.enter(request)
        except Refusal as refusal:
            start_response(
                f"{refusal.status} {_REASONS[refusal.status]}",
                [*refusal.headers, ("Content-Length", str(len(refusal.body)))],
            )
            return [refusal.body]
        extra = admitted.headers()
        status: list[int] = []

        def start_with_headers(
            code: str, response_headers: list[tuple[str, str]], *exc: Any
        ) -> Any:
            status.append(int(code.split(" ", 1)[0]))
            return start_response(code, [*response_headers, *extra], *exc)

        try:
            body = self.app(environ, start_with_headers)
        except BaseException as error:
            guard.leave(admitted, None, error)
            raise
        return _Guarded(body, guard, admitted, status)


_REASONS = {429: "Too Many Requests", 503: "Service Unavailable"}
