"""Driving an ASGI app in-process, as the drills' clients do (no sockets, no server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ASGIApp", "Answer", "call"]

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as a client sees it: its status and its ``Retry-After``, if any."""

    status: int
    retry_after: str | None

    @property
    def refused(self) -> bool:
        """True for a guard's refusal: 429 or 503 telling the client when to retry."""
        return self.status in (429, 503) and self.retry_after is not None


async def call(
    app: ASGIApp, path: str, *, client: str, headers: Sequence[tuple[str, str]] = ()
) -> Answer:
    """``GET path`` on `app` directly through ASGI, from address `client`.

    An exception escaping the app is a 500 unless a response had already started.
    """
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "client": (client, 40000), "server": ("drill", 80),
        "headers": [(b"host", b"drill"), *((k.encode(), v.encode()) for k, v in headers)],
    }  # fmt: skip
    requested = False
    status: list[int] = []
    retry: list[str] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal requested
        if requested:
            return {"type": "http.disconnect"}
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            retry.extend(v.decode() for k, v in message["headers"] if k.lower() == b"retry-after")

    try:
        await app(scope, receive, send)
    except Exception:
        if not status:
            status.append(500)
    return Answer(status[0] if status else 500, retry[0] if retry else None)
