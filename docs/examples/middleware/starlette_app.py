"""Starlette behind the pure ASGI middleware: route templates are found in the app's routes."""

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from sendguard import Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware


async def show_email(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["email_id"]})


async def archive_page(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"archive {request.path_params['slug']}")


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def files(scope: Scope, receive: Receive, send: Send) -> None:
    """A mounted ASGI app with no routes of its own."""
    await PlainTextResponse("a file")(scope, receive, send)


app = Starlette(
    routes=[
        Route("/v1/emails/{email_id}", show_email),
        Mount("/archive", routes=[Route("/{slug}", archive_page)]),
        Mount("/files", app=files),
        Route("/healthz", healthz),
    ]
)
guard = Guard(
    baseline=RoutePolicy(limits="1/minute"),  # tiny, so the second request to a route is refused
    routes={
        "GET /v1/emails/{email_id}": RoutePolicy(limits="2/minute"),  # the app's own spelling
        "GET /healthz": RoutePolicy.exempt(),
    },
)
guarded_app = GuardMiddleware(app, guard)  # uvicorn module:guarded_app


async def main() -> None:
    transport = httpx.ASGITransport(app=guarded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for paths in (
            ["/v1/emails/em_1", "/v1/emails/em_2", "/v1/emails/em_3"],
            ["/archive/spring", "/archive/summer"],
            ["/files/a.txt", "/files/deep/b.txt"],
            ["/nope", "/other/missing"],
            ["/healthz", "/healthz"],
        ):
            replies = [await client.get(path) for path in paths]
            codes = [reply.status_code for reply in replies]
            last = replies[-1]
            route = last.json()["route"] if last.status_code == 429 else "exempt"
            print(f"{', '.join(paths)}: {codes} -> {route}")


asyncio.run(main())
