"""Django behind the WSGI middleware: a one-file project, its routes found by django_template."""

import io
import json
import sys
from collections.abc import Iterable
from wsgiref.util import setup_testing_defaults

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from sendguard import Guard, RoutePolicy
from sendguard.wsgi import GuardWSGIMiddleware, django_template

settings.configure(
    DEBUG=False,
    SECRET_KEY="example-only",
    ROOT_URLCONF=__name__,  # the URL patterns below, in this same file
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
)
django.setup()


def analytics(request: HttpRequest, email_id: int) -> JsonResponse:
    return JsonResponse({"email": email_id, "opens": 3})


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("v1/emails/<int:email_id>/analytics", analytics),
    path("healthz", healthz),
]

guard = Guard(
    baseline=RoutePolicy(limits="100/minute"),
    routes={
        "GET /v1/emails/{email_id}/analytics": RoutePolicy(limits="2/minute"),
        "GET /healthz": RoutePolicy.exempt(),
    },
)
# The WSGI application a server such as gunicorn runs (project/wsgi.py in a full project).
application = GuardWSGIMiddleware(get_wsgi_application(), guard, template=django_template)


def call(method: str, url: str) -> tuple[str, dict[str, str], bytes]:
    """Call `application` as a WSGI server would; return status, headers and body."""
    environ: dict[str, object] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": url,
        "REMOTE_ADDR": "192.0.2.8",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }
    setup_testing_defaults(environ)
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], *exc: object) -> None:
        started.append((status, headers))

    body: Iterable[bytes] = application(environ, start_response)
    try:
        content = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()  # servers close the body: the call ends here
    status, headers = started[0]
    return status, dict(headers), content


for n in (1, 2, 3):
    status, headers, body = call("GET", f"/v1/emails/{n}/analytics")
    text = body.decode() if status.startswith("200") else headers["Content-Type"]
    print(f"/v1/emails/{n}/analytics: {status} | {text}")
problem = json.loads(body)  # the last reply: the 429
print("refused:", problem["route"], "| retry_after in the body and header agree:", end=" ")
print(headers["Retry-After"] == str(problem["retry_after"]))
status, headers, body = call("GET", "/healthz")
print("/healthz:", status, "| RateLimit fields:", "RateLimit" in headers)
