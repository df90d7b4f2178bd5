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


def by_header(name: str) -> KeyFunction:
    """Key by the value of header `name` (digested in storage); else by client address."""
    header = name.lower()

    def key(request: RequestInfo) -> str | None:
        value = request.headers.get(header)
        return f"{header}:{value}" if value else None

    key.__doc__ = f"Key by the {name} header (digested in storage); else by client address."
    return key


by_api_key: KeyFunction = by_header("authorization")
"""Key by the Authorization header (an API key or token); else by client address."""
