"""TLS certificates: a valid chain, a matching hostname, and days left before expiry.

Incident #4: ten tracking domains lost valid certificates and users noticed first. List
every host users reach; each gets its own probe (so they run concurrently). The chain
and the hostname are verified the way a browser would (system CAs, or `cafile`); when
verification fails the certificate is fetched again without verification, so the
report still says when it expires (or expired) next to why it is invalid.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard.health._probe import BaseProbe, describe_error
from sendguard.health._report import format_time
from sendguard.health._result import Detail, ProbeResult, Status, Thresholds
from sendguard.health._x509 import validity

__all__ = ["TlsProbe", "tls_probes"]

DAY = 86400.0


def _days(days: float) -> str:
    return f"in {days:.1f} days" if days >= 0 else f"{-days:.1f} days ago"


class TlsProbe(BaseProbe):
    """The certificate `host` presents on `port`.

    Args:
        warn_days: days left at which the check warns.
        fail_days: days left at which the check fails.
        cafile: trust these CAs instead of the system's.
        connect_to: the address to connect to (default: `host`); the hostname checked
            and sent as SNI is always `host`.
    """

    component_type = "system"

    def __init__(
        self,
        host: str,
        port: int = 443,
        *,
        name: str | None = None,
        critical: bool = False,
        timeout: float = 5.0,
        warn_days: float = 14.0,
        fail_days: float = 3.0,
        cafile: str | None = None,
        connect_to: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(host, str) or not host or "/" in host:
            raise ConfigError(f"TlsProbe.host must be a host name, got {host!r}")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"TlsProbe.port must be a TCP port, got {port!r}")
        default = f"tls/{host}" if port == 443 else f"tls/{host}/{port}"
        super().__init__(name or default, critical=critical, timeout=timeout)
        self.days = Thresholds.below(warn=warn_days, fail=fail_days)
        self.host, self.port = host, port
        self.cafile = cafile
        self.connect_to = connect_to
        self.clock = clock

    def _certificate(self, context: ssl.SSLContext) -> bytes:
        address = (self.connect_to or self.host, self.port)
        with (
            socket.create_connection(address, timeout=self.timeout) as raw,
            context.wrap_socket(raw, server_hostname=self.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        if not der:
            raise ssl.SSLError("the server sent no certificate")
        return der

    def check(self) -> ProbeResult:
        """Handshake with verification; on failure, again without, to read the dates."""
        invalid: str | None = None
        try:
            try:
                der = self._certificate(ssl.create_default_context(cafile=self.cafile))
            except ssl.SSLCertVerificationError as error:
                invalid = (error.verify_message or describe_error(error)).rstrip(".")
                blind = ssl.create_default_context()
                blind.check_hostname = False
                blind.verify_mode = ssl.CERT_NONE
                der = self._certificate(blind)
        except OSError as error:  # ssl.SSLError is an OSError
            return ProbeResult.failing(
                f"no TLS handshake with {self.host}:{self.port}: {describe_error(error)}",
                measurement="daysToExpiry",
            )
        not_before, not_after = validity(der)
        days = (not_after - self.clock.wall()) / DAY
        status = self.days.judge(days)
        if invalid is not None:
            status = Status.FAIL
            message = f"invalid certificate: {invalid}; it expires {_days(days)}"
        elif status is not Status.PASS:
            message = f"the certificate expires {_days(days)} ({format_time(not_after)})"
        else:
            message = ""
        details: dict[str, Detail] = {
            "host": self.host, "port": self.port, "verified": invalid is None,
            "not_before": format_time(not_before), "not_after": format_time(not_after),
        }  # fmt: skip
        if invalid is not None:
            details["error"] = invalid
        return ProbeResult(
            status, message, observed_value=round(days, 2), observed_unit="d",
            measurement="daysToExpiry", details=details,
        )  # fmt: skip


def tls_probes(hosts: Iterable[str], **options: object) -> list[TlsProbe]:
    """One `TlsProbe` per ``host`` or ``host:port`` in `hosts`, with the same options."""
    probes = []
    for item in hosts:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "443")
        if not port.isdigit():
            raise ConfigError(f"bad TLS host {item!r}: use host or host:port")
        probes.append(TlsProbe(host, int(port), **options))  # type: ignore[arg-type]
    return probes
