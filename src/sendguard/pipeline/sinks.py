"""SMTP sinks for the pipeline's demo, drills and tests: aiosmtpd servers with faults.

A `SinkServer` is a real SMTP server (aiosmtpd) on a free 127.0.0.1 port, served from a
thread of its own. It records every message it accepts (the ``X-Sendguard-Key`` header,
the recipient, the sink's name) and gives each incoming message the fault its `FaultPlan`
(`sendguard.pipeline.faults`) draws for it::

    plan = FaultPlan({Fault.DROP_AFTER_DATA: 0.02, Fault.TRANSIENT: 0.05}, seed=7)
    with SinkServer("primary", faults=plan) as sink:
        ...                                   # send to sink.host, sink.port
        assert sink.counts_by_key()["send:1:2"] <= 1

The faults are the ways a mail server leaves a sender in doubt or not:

| fault | what the sink does | stored |
|---|---|---|
| NONE | 250 at the end of DATA | yes |
| TRANSIENT | 451 at the end of DATA | no |
| PERMANENT | 550 at the end of DATA | no |
| HANG | takes the body, never answers (until `hang_seconds` pass or the sink stops) | no |
| DROP_AFTER_DATA | takes the body, stores it, closes the connection unanswered | yes |
| REFUSE | resets the connection at RCPT, before any body | no |

``plan.down = True`` takes the whole server down at once: new connections are reset as
they arrive, open sessions at their next command.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from types import TracebackType
from typing import Any, NoReturn

from aiosmtpd.smtp import SMTP, Envelope, Session

from sendguard import ConfigError
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.smtp import KEY_HEADER

__all__ = ["Fault", "FaultPlan", "ReceivedMessage", "SinkServer"]

_STOP_TIMEOUT = 5.0
"""Seconds `SinkServer.stop` waits for the server thread (it never needs that long)."""


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One message a sink accepted (stored), for one recipient.

    Attributes:
        key: the ``X-Sendguard-Key`` header ("" when absent).
        recipient: the envelope recipient.
        provider: the name of the sink that stored it.
        sender: the envelope sender.
        message_id: the ``Message-ID`` header ("" when absent).
    """

    key: str
    recipient: str
    provider: str
    sender: str
    message_id: str


class _Envelope(Envelope):
    """aiosmtpd's envelope plus the fault drawn for it at RCPT."""

    def __init__(self) -> None:
        super().__init__()
        self.fault = Fault.NONE


class _SinkSMTP(SMTP):
    """aiosmtpd's protocol, with our envelopes, known to its sink while connected."""

    def __init__(self, sink: SinkServer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(
            _Handler(sink),
            hostname=f"{sink.name}.sink.localhost",
            ident="sendguard sink",
            enable_SMTPUTF8=True,
            loop=loop,
        )
        self._sink = sink

    def _create_envelope(self) -> Envelope:
        return _Envelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sink._live.add(self)
        super().connection_made(transport)


class _Refuser(asyncio.Protocol):
    """What a connection to a down sink gets: closed at once, before any greeting."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.Transport):
            transport.abort()
        else:
            transport.close()


async def _hang_up(server: SMTP, *, reset: bool) -> NoReturn:
    """Close the connection without a reply and wait to be cancelled (connection_lost
    cancels the session's task, which ends here quietly)."""
    transport = server.transport
    if transport is not None:
        if reset and isinstance(transport, asyncio.Transport):
            transport.abort()
        else:
            transport.close()
    await asyncio.get_running_loop().create_future()
    raise AssertionError("unreachable: the session is cancelled when its connection is lost")


class _Handler:
    """aiosmtpd hooks: draw each message's fault at RCPT, apply it at the end of DATA."""

    def __init__(self, sink: SinkServer) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sink.faults.down:
            await _hang_up(server, reset=True)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self.sink.faults.fault_for(address, self.sink._next_attempt(address))
        if fault is Fault.REFUSE:
            await _hang_up(server, reset=True)
        if isinstance(envelope, _Envelope) and envelope.fault is Fault.NONE:
            envelope.fault = fault
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = envelope.fault if isinstance(envelope, _Envelope) else Fault.NONE
        name = self.sink.name
        if self.sink.faults.down or fault is Fault.REFUSE:
            await _hang_up(server, reset=True)
        if fault is Fault.TRANSIENT:
            return f"451 4.3.0 {name}: temporarily unable to take the message, try again later"
        if fault is Fault.PERMANENT:
            return f"550 5.1.1 {name}: mailbox unavailable"
        if fault is Fault.HANG:
            self.sink._hang(+1)
            try:
                await asyncio.sleep(self.sink.hang_seconds)
            finally:
                self.sink._hang(-1)
            return f"451 4.4.2 {name}: no answer in time"
        self.sink._record(envelope)
        if fault is Fault.DROP_AFTER_DATA:
            await _hang_up(server, reset=False)
        return f"250 2.0.0 {name}: queued"


class SinkServer:
    """An aiosmtpd server on a free 127.0.0.1 port, recording what it accepted.

    Args:
        name: names the sink (it is each `ReceivedMessage`'s `provider`).
        faults: the `FaultPlan` (default: no faults); replaceable while running, and
            ``faults.down`` settable, to change the sink's behaviour mid-test.
        hang_seconds: how long a `Fault.HANG` message waits before a late 451.

    Use it as a context manager, or `start()` and `stop()`; `port` is known once started.
    """

    def __init__(
        self, name: str, *, faults: FaultPlan | None = None, hang_seconds: float = 30.0
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"SinkServer.name must be a non-empty str, got {name!r}")
        if faults is not None and not isinstance(faults, FaultPlan):
            raise ConfigError(f"SinkServer.faults must be a FaultPlan, got {faults!r}")
        if not isinstance(hang_seconds, int | float) or not 0 < hang_seconds <= 3600:
            raise ConfigError(f"SinkServer.hang_seconds must be in (0, 3600], got {hang_seconds!r}")
        self.name = name
        self.host = "127.0.0.1"
        self.port = 0
        self.faults = faults if faults is not None else FaultPlan()
        self.hang_seconds = float(hang_seconds)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._hanging = 0
        self._received: list[ReceivedMessage] = []
        self._attempts: collections.Counter[str] = collections.Counter()
        self._connections = 0
        self._live: weakref.WeakSet[_SinkSMTP] = weakref.WeakSet()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._headers = BytesHeaderParser()

    def __repr__(self) -> str:
        return f"SinkServer({self.name!r}, {self.host}:{self.port})"

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> SinkServer:
        """Start serving (returns once the port is bound)."""
        if self._thread is not None:
            raise RuntimeError(f"sink {self.name!r} is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name=f"sink-{self.name}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop serving: every open connection is reset and hung messages are let go."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed
            loop.call_soon_threadsafe(stopping.set)
        thread.join(_STOP_TIMEOUT)
        self._thread = None

    def __enter__(self) -> SinkServer:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as error:
            failure.append(error)
        finally:
            ready.set()
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await loop.create_server(lambda: self._accept(loop), self.host, 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for protocol in list(self._live):
                if isinstance(protocol.transport, asyncio.Transport):
                    protocol.transport.abort()
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    def _accept(self, loop: asyncio.AbstractEventLoop) -> asyncio.Protocol:
        with self._changed:
            self._connections += 1
            self._changed.notify_all()
        if self.faults.down:
            return _Refuser()
        return _SinkSMTP(self, loop)

    # --- bookkeeping (called from the server thread) ------------------------------------

    def _next_attempt(self, recipient: str) -> int:
        with self._lock:
            attempt = self._attempts[recipient]
            self._attempts[recipient] = attempt + 1
        return attempt

    def _record(self, envelope: Envelope) -> None:
        content = envelope.original_content or b""
        headers: Any = self._headers.parsebytes(content)
        key = str(headers.get(KEY_HEADER, "") or "").strip()
        message_id = str(headers.get("Message-ID", "") or "").strip()
        sender = envelope.mail_from or ""
        stored = [
            ReceivedMessage(key, recipient, self.name, sender, message_id)
            for recipient in envelope.rcpt_tos
        ]
        with self._changed:
            self._received.extend(stored)
            self._changed.notify_all()

    def _hang(self, change: int) -> None:
        with self._changed:
            self._hanging += change
            self._changed.notify_all()

    # --- what it saw --------------------------------------------------------------------

    def received(self) -> list[ReceivedMessage]:
        """Every message stored so far, in arrival order (one entry per recipient)."""
        with self._lock:
            return list(self._received)

    def counts_by_key(self) -> collections.Counter[str]:
        """How many times each key was stored."""
        with self._lock:
            return collections.Counter(message.key for message in self._received)

    def connections(self) -> int:
        """Connections accepted so far (refused ones included)."""
        with self._lock:
            return self._connections

    def hanging(self) -> int:
        """Messages held right now by a `Fault.HANG` (body taken, no answer given)."""
        with self._lock:
            return self._hanging

    def wait_until(self, condition: Callable[[SinkServer], bool], timeout: float) -> bool:
        """Block until `condition(self)` holds (checked whenever the sink stores a message,
        accepts a connection or starts or ends a hang); False if `timeout` passes first."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout)

    def drop_connections(self) -> int:
        """Reset every open connection at once (a relay restarting); returns how many."""
        loop = self._loop
        if self._thread is None or loop is None:
            return 0

        async def reset() -> int:
            dropped = 0
            for protocol in list(self._live):
                if isinstance(protocol.transport, asyncio.Transport):
                    protocol.transport.abort()
                    dropped += 1
            return dropped

        return asyncio.run_coroutine_threadsafe(reset(), loop).result(_STOP_TIMEOUT)
