"""Who is asking: the request as guards see it, client IPs behind proxies, key functions.

`X-Forwarded-For` and `Forwarded` are believed only when the socket peer is one of the
configured trusted proxies; then the client is the rightmost address that is not a
trusted proxy. Anything else a client sends about itself is ignored, so a spoofed header
from an untrusted client cannot change its key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple

from sendguard._core.errors import ConfigError

__all__ = [
    "HeaderKey",
    "KeyFunction",
    "RequestInfo",
    "TrustedProxies",
    "by_api_key",
    "by_client_ip",
    "by_header",
    "resolve_client_ip",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RequestInfo(NamedTuple):
    """What guards need of a request, the same under ASGI, WSGI and decorators."""

    method: str
    path: str
    route: str
    """The route template with its method (``GET /v1/emails/{id}``), never the raw path."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    client_ip: str
    """The client's address, after trusted-proxy resolution."""


KeyFunction = Callable[[RequestInfo], str | None]
"""Maps a request to the key its limits count under; None falls back to the client IP."""


class TrustedProxies:
    """The proxies whose forwarding headers are believed (addresses or CIDR ranges)."""

    __slots__ = ("_memo", "_memo_size", "_networks")

    def __init__(self, proxies: Iterable[str] = (), *, memo_size: int = 4096) -> None:
        """`memo_size`: how many addresses' answers are remembered (parsing an address
        costs microseconds, and behind a proxy every request asks about two or more)."""
        if not isinstance(memo_size, int) or isinstance(memo_size, bool) or memo_size < 1:
            raise ConfigError(f"memo_size must be a whole number >= 1, got {memo_size!r}")
        self._memo_size = memo_size
        networks: list[Network] = []
        for proxy in proxies:
            try:
                networks.append(ipaddress.ip_network(proxy.strip(), strict=False))
            except (ValueError, AttributeError):
                raise ConfigError(
                    f"trusted proxy {proxy!r} is not an IP address or CIDR range"
                ) from None
        self._networks = tuple(networks)
        self._memo: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str):
            return False
        found = self._memo.get(address)
        if found is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                found = False
            else:
                found = any(ip in net for net in self._networks)
            if len(self._memo) >= self._memo_size:  # bounded: addresses come from clients
                self._memo.clear()
            self._memo[address] = found
        return found


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` addresses of a `Forwarded` header (RFC 7239), in order."""
    found: list[str] = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, raw = pair.strip().partition("=")
            if name.lower() != "for" or not raw:
                continue
            addr = raw.strip().strip('"')
            if addr.startswith("["):  # "[2001:db8::1]:4711"
                addr = addr[1 : addr.find("]")] if "]" in addr else addr[1:]
            elif addr.count(":") == 1:  # "192.0.2.43:47011"
                addr = addr.split(":", 1)[0]
            found.append(addr)
    return found


def resolve_client_ip(peer: str | None, headers: Mapping[str, str], trusted: TrustedProxies) -> str:
    """The client's address: the peer, or, behind trusted proxies, who they forwarded for."""
    if not peer:
        return "unknown"
    if peer not in trusted:
        return peer
    forwarded = headers.get("forwarded")
    chain = (
        _forwarded_for(forwarded)
        if forwarded
        else [a.strip() for a in headers.get("x-forwarded-for", "").split(",") if a.strip()]
    )
    for address in reversed(chain):
        if address not in trusted:
            return address
    return chain[0] if chain else peer


def by_client_ip(request: RequestInfo) -> str:
    """Key by client address."""
    return f"ip:{request.client_ip}"


class HeaderKey:
    """Key by the value of one request header (digested in storage); else by client address.

    Made by `by_header`. Besides reading `RequestInfo.headers`, it can read an ASGI
    scope's raw header list directly (`from_raw`), which spares the middleware building
    a `RequestInfo` on every request.
    """

    __slots__ = ("header", "raw_name")

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a key header needs a name, got {name!r}")
        self.header = name.strip().lower()
        self.raw_name = self.header.encode("latin-1")

    def __call__(self, request: RequestInfo) -> str | None:
        value = request.headers.get(self.header)
        return f"{self.header}:{value}" if value else None

    def from_raw(self, raw: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The key from raw ``(name, value)`` header pairs (the first value of the header,
        its name in any case); None when the header is absent or empty."""
        wanted = self.raw_name
        for name, value in raw:
            if name == wanted or (len(name) == len(wanted) and name.lower() == wanted):
                return f"{self.header}:{value.decode('latin-1')}" if value else None
        return None

    def __repr__(self) -> str:
        return f"by_header({self.header!r})"


def by_header(name: str) -> HeaderKey:
    """Key by the value of header `name` (digested in storage); else by client address."""
    return HeaderKey(name)


by_api_key: KeyFunction = by_header("authorization")
"""Key by the Authorization header (an API key or token); else by client address."""
