"""Streaming responses pass through as they come; lifespan shutdown closes the guard."""

import asyncio
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import Message

from sendguard import Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware


async def export(request: Request) -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"row {n}\n".encode()
            await asyncio.sleep(0)

    return StreamingResponse(rows(), media_type="text/csv")


class ClosingGuard(Guard):
    async def aclose(self) -> None:
        print("lifespan shutdown: guard.aclose() called")
        await super().aclose()


app = Starlette(routes=[Route("/v1/exports/contacts", export)])
guard = ClosingGuard(baseline=RoutePolicy(limits="10/minute", bulkhead=Bulkhead(1)))
guarded_app = GuardMiddleware(app, guard)


async def stream_one_export() -> None:
    """Drive one request by hand, to watch each ASGI message as the server would send it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/exports/contacts",
        "raw_path": b"/v1/exports/contacts",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("192.0.2.8", 50000),
        "server": ("testserver", 80),
    }

    requests = iter([{"type": "http.request", "body": b"", "more_body": False}])
    response_done = asyncio.Event()

    async def receive() -> Message:
        request = next(requests, None)
        if request is None:  # the client stays connected until the response is done
            await response_done.wait()
            return {"type": "http.disconnect"}
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = [name.decode().lower() for name, _ in message["headers"]]
            print("start:", message["status"], [n for n in names if n.startswith("ratelimit")])
        elif message.get("body"):
            print("chunk:", message["body"])
            # The export holds the route's only bulkhead slot until its last chunk is sent.
            transport = httpx.ASGITransport(app=guarded_app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                other = await client.get("/v1/exports/contacts")
            print("  another export meanwhile:", other.status_code)

    await guarded_app(scope, receive, send)
    response_done.set()
    transport = httpx.ASGITransport(app=guarded_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        print("after the stream:", (await client.get("/v1/exports/contacts")).status_code)


async def lifespan() -> None:
    """What the server does at start-up and shutdown."""
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        print("server got:", message["type"])

    await guarded_app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)


asyncio.run(stream_one_export())
asyncio.run(lifespan())
