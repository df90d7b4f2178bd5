"""A real HTTP server for the backoff tests: uvicorn on a loopback socket, in a thread.

The listening socket is bound before the thread starts, so a client may connect at once
(the kernel queues the connection until uvicorn accepts it): no polling, no sleeping.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STOP_DEADLINE = 10.0
"""Seconds uvicorn gets to shut down. (Start-up needs no deadline of its own: every test
request has a client timeout, and the socket already listens.)"""


class FlakyApp:
    """Answers the first `failures` requests with `status` and `Retry-After`, then 200.

    `failures=None` means a total outage: every request fails. Counts what it received.
    """

    def __init__(
        self, failures: int | None, *, status: int = 503, retry_after: str | None = "1"
    ) -> None:
        self.failures = failures
        self.status = status
        self.retry_after = retry_after
        self.received: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            self.received.append((scope["method"], scope["path"], headers))
            count = len(self.received)
        failing = self.failures is None or count <= self.failures
        if failing:
            status, body = self.status, b"unavailable"
            extra = [(b"retry-after", self.retry_after.encode())] if self.retry_after else []
        else:
            status, body, extra = 200, b"ok", []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": body})


class ServerThread:
    """Serve `app` with uvicorn on 127.0.0.1 in a daemon thread, for a `with` block."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle stalls
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", ws="none", http="h11", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(STOP_DEADLINE)
        self.socket.close()
        assert not self.thread.is_alive(), "uvicorn did not stop in time"
