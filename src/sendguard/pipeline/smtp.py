"""`SmtpProvider`: an SMTP relay reached with the standard `smtplib` client.

The provider keeps its session open and reuses it for message after message (reconnecting
when it has gone stale, or after a failure), and drives the phases of each transaction
itself (MAIL, RCPT, DATA, the dot-stuffed body, the final reply), so that it always knows
whether the body went out when something breaks. That is what decides the error::

    SmtpError (SendguardError)      base: .provider, .phase, .code
    ├── SmtpTransient               connection failure or a 4xx reply: nothing was taken,
    │                               safe to retry here or on another provider
    ├── SmtpPermanent               a 5xx reply about the message: do not retry anywhere
    └── SmtpUnknown                 timeout or disconnect AFTER the body was sent: the
                                    relay may have taken it: never resend automatically

A 4xx or 5xx final reply after DATA is a definite answer (transient or permanent); only
silence after the body is unknown (incident #6, "SMTP fog of war").
"""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import re
import smtplib
import threading
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

from sendguard import ConfigError, SendguardError

if TYPE_CHECKING:
    from sendguard.pipeline.delivery import OutboundMessage

__all__ = [
    "KEY_HEADER",
    "SmtpError",
    "SmtpPermanent",
    "SmtpProvider",
    "SmtpTransient",
    "SmtpUnknown",
    "build_message",
    "message_id",
]

KEY_HEADER = "X-Sendguard-Key"
"""The header that carries a message's idempotency key (what the sinks count by)."""

_LEADING_DOT = re.compile(rb"(?m)^\.")
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
"""CRLF lines; a non-ASCII body is encoded (quoted-printable or base64), so no relay
needs 8BITMIME."""
_CONNECTION_ERRORS = (OSError, smtplib.SMTPException)
_PHASES = {"mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA", "reply": "the end of DATA"}


class SmtpError(SendguardError):
    """An SMTP send that did not end in a 2xx reply.

    Attributes:
        provider: the provider's name.
        phase: where it broke: ``build`` (the message cannot be written out),
            ``session`` (no free session, or closed), ``connect``,
            ``mail``, ``rcpt``, ``data`` (the DATA command), ``body`` (sending the body),
            ``reply`` (the final reply after the body).
        code: the SMTP reply code, when there was one.
    """

    def __init__(self, message: str, *, provider: str, phase: str, code: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.phase = phase
        self.code = code


class SmtpTransient(SmtpError):
    """Nothing was taken (a connection failure, or a 4xx reply): safe to retry or fail over."""


class SmtpPermanent(SmtpError):
    """A 5xx reply about this message (no such mailbox, sender refused): do not retry."""


class SmtpUnknown(SmtpError):
    """The body was sent, then no answer came (timeout, disconnect): it may have been
    delivered. Never resend automatically; list it for an operator."""


def message_id(message: OutboundMessage) -> str:
    """A Message-ID derived from the idempotency key: every attempt of one message, on any
    provider, carries the same one (receiving systems can deduplicate on it)."""
    digest = hashlib.blake2b(message.key.encode("utf-8", "surrogatepass"), digest_size=16)
    domain = message.sender.rpartition("@")[2] or "sendguard.localhost"
    return f"<{digest.hexdigest()}@{domain}>"


def build_message(message: OutboundMessage) -> bytes:
    """The message as it goes on the wire after DATA: CRLF lines, dot-stuffed, ending with
    the terminating ``.`` line."""
    mail = EmailMessage(policy=_POLICY)
    for name, value in (
        ("From", message.sender),
        ("To", message.recipient),
        ("Subject", message.subject),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id(message)),
        (KEY_HEADER, message.key),
    ):
        if value.isascii():  # one line, no encoding needed: skip the header parser (a
            mail.set_raw(name, value)  # third of the cost of a send); folded if long
        else:
            mail[name] = value
    mail.set_content(message.body)
    data = _LEADING_DOT.sub(b"..", mail.as_bytes())
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Broken(Exception):
    """The connection failed during a command (before the body): the session is gone."""

    def __init__(self, phase: str, error: BaseException) -> None:
        super().__init__(f"{phase}: {type(error).__name__}: {error}")
        self.phase = phase
        self.error = error


class SmtpProvider:
    """An SMTP relay at `host`:`port`, reached over reused `smtplib` sessions.

    Thread-safe: each send takes a session of its own (an idle one, else a new one) out
    of at most `max_sessions`, waiting up to `timeout` seconds for one to free up. The
    default of one session matches what a relay expects of a polite client (incident #6:
    too many worker connections took a server down); raise it for throughput.

    Args:
        name: names the provider (in errors, results and breaker names).
        timeout: seconds each network operation (connect, each command, the final reply)
            may take.
        max_sessions: how many sessions may be open at once.
        local_hostname: what EHLO announces.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        max_sessions: int = 1,
        local_hostname: str = "sendguard.localhost",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"SmtpProvider.name must be a non-empty str, got {name!r}")
        if not isinstance(host, str) or not host:
            raise ConfigError(f"SmtpProvider.host must be a non-empty str, got {host!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"SmtpProvider.port must be in 1..65535, got {port!r}")
        number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not number or not 0 < timeout <= 600:
            raise ConfigError(f"SmtpProvider.timeout must be in (0, 600] seconds, got {timeout!r}")
        if not isinstance(max_sessions, int) or isinstance(max_sessions, bool) or max_sessions < 1:
            raise ConfigError(
                f"SmtpProvider.max_sessions must be a whole number >= 1, got {max_sessions!r}"
            )
        self.name = name
        self.host = host
        self.port = port
        self.timeout = float(timeout)
        self.max_sessions = max_sessions
        self.local_hostname = local_hostname
        self._slots = threading.BoundedSemaphore(max_sessions)
        self._lock = threading.Lock()
        self._idle: list[smtplib.SMTP] = []
        self._closed = False
        self._opened = 0

    def __repr__(self) -> str:
        return f"SmtpProvider({self.name!r}, {self.host}:{self.port})"

    @property
    def sessions_opened(self) -> int:
        """Sessions (connections) opened so far."""
        return self._opened

    # --- sending ------------------------------------------------------------------------

    def send(self, message: OutboundMessage) -> None:
        """Send `message`; return on a 2xx final reply, else raise the classified error
        (`SmtpTransient`, `SmtpPermanent` or `SmtpUnknown`)."""
        try:
            payload = build_message(message)
        except (ValueError, TypeError) as error:  # nothing to send: it would fail anywhere
            raise SmtpPermanent(
                f"{self.name}: the message cannot be built: {error}",
                provider=self.name,
                phase="build",
            ) from error
        if not self._slots.acquire(timeout=self.timeout):
            raise SmtpTransient(
                f"{self.name}: all {self.max_sessions} sessions busy for {self.timeout:g}s",
                provider=self.name,
                phase="session",
            )
        try:
            self._send(message, payload)
        finally:
            self._slots.release()

    def _send(self, message: OutboundMessage, payload: bytes) -> None:
        client = self._take_idle()
        if client is not None:
            try:
                self._envelope(client, message)
            except _Broken:  # gone stale while idle (the relay hung up): nothing was sent
                _discard(client)
                client = None
        if client is None:
            client = self._connect()
            try:
                self._envelope(client, message)
            except _Broken as broken:
                _discard(client)
                raise self._transient(broken.phase, str(broken)) from broken.error
        # The relay said 354: from here, a failure may have left the message with it.
        try:
            self._body(client, payload)
        except SmtpError as error:
            if error.phase == "reply" and not isinstance(error, SmtpUnknown):
                self._give_back(client)  # a definite 4xx/5xx: the session is still good
            else:
                _discard(client)
            raise
        except BaseException:
            _discard(client)
            raise
        self._give_back(client)

    def _connect(self) -> smtplib.SMTP:
        with self._lock:
            if self._closed:
                raise SmtpTransient(
                    f"{self.name}: provider closed", provider=self.name, phase="session"
                )
        try:
            client = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
        except _CONNECTION_ERRORS as error:
            raise self._transient("connect", f"{type(error).__name__}: {error}") from error
        with self._lock:
            self._opened += 1
        try:
            code, reply = client.ehlo()
        except _CONNECTION_ERRORS as error:
            _discard(client)
            raise self._transient("connect", f"EHLO: {type(error).__name__}: {error}") from error
        if code != 250:
            _discard(client)
            raise self._transient("connect", f"EHLO answered {code} {_text(reply)}", code)
        return client

    def _envelope(self, client: smtplib.SMTP, message: OutboundMessage) -> None:
        """MAIL, RCPT and DATA up to the 354; a refusal raises the classified error (and
        leaves the session reset for the next message); a dead connection raises _Broken."""
        for phase in ("mail", "rcpt", "data"):
            try:
                if phase == "mail":
                    code, reply = client.mail(message.sender)
                elif phase == "rcpt":
                    code, reply = client.rcpt(message.recipient)
                else:
                    code, reply = client.docmd("DATA")
            except _CONNECTION_ERRORS as error:
                raise _Broken(phase, error) from error
            wanted = 354 if phase == "data" else 250
            if code == wanted or (phase == "rcpt" and code == 251):
                continue
            if code == 421 or code < 400:  # closing, or an answer that makes no sense
                _discard(client)
                raise _Broken(phase, ConnectionError(f"{code} {_text(reply)}"))
            refusal = self._refused(phase, code, reply)
            self._reset_or_discard(client)
            raise refusal

    def _body(self, client: smtplib.SMTP, payload: bytes) -> None:
        try:
            client.send(payload)
        except _CONNECTION_ERRORS as error:  # the terminating dot did not all go out
            raise self._transient("body", f"{type(error).__name__}: {error}") from error
        try:
            code, reply = client.getreply()
        except Exception as error:
            raise SmtpUnknown(
                f"{self.name}: no reply after the message body ({type(error).__name__}: "
                f"{error}): it may have been delivered",
                provider=self.name,
                phase="reply",
            ) from error
        if 200 <= code < 300:
            return
        if 400 <= code < 600:
            raise self._refused("reply", code, reply)
        raise SmtpUnknown(
            f"{self.name}: unreadable reply after the message body ({code} {_text(reply)})",
            provider=self.name,
            phase="reply",
            code=code,
        )

    def _refused(self, phase: str, code: int, reply: bytes) -> SmtpError:
        text = f"{self.name}: {code} {_text(reply)} (at {_PHASES[phase]})"
        if code >= 500:
            return SmtpPermanent(text, provider=self.name, phase=phase, code=code)
        return SmtpTransient(text, provider=self.name, phase=phase, code=code)

    def _transient(self, phase: str, detail: str, code: int | None = None) -> SmtpTransient:
        return SmtpTransient(f"{self.name}: {detail}", provider=self.name, phase=phase, code=code)

    # --- the session pool ---------------------------------------------------------------

    def _take_idle(self) -> smtplib.SMTP | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give_back(self, client: smtplib.SMTP) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(client)
                return
        _quit(client)

    def _reset_or_discard(self, client: smtplib.SMTP) -> None:
        try:
            code, _ = client.rset()
        except _CONNECTION_ERRORS:
            code = 0
        if code == 250:
            self._give_back(client)
        else:
            _discard(client)

    def close(self) -> None:
        """Say QUIT on the idle sessions and close them; sessions in use close when their
        send ends. Later sends raise `SmtpTransient`."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client in idle:
            _quit(client)


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:200]


def _discard(client: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        client.close()


def _quit(client: smtplib.SMTP) -> None:
    try:
        if client.sock is not None:
            client.sock.settimeout(min(1.0, client.timeout))
        client.quit()
    except _CONNECTION_ERRORS:
        pass
    _discard(client)
