"""Drill ``tls-expiry``: tracking domains lose valid certificates (INCIDENTS.md #4).

Ten tracking domains are served on loopback by one local TLS server that picks each
domain's certificate by SNI. Certificates come from a throwaway local CA made for the
run: four stay valid, three expired when the host reset them, one names the wrong host,
one is self-signed, and one expires in five days. Users reach every domain; the only
monitor in the incident watched the main site.

Unguarded, that uptime check looks at the main site (``links-0``, valid) and stays
green. Guarded, one `TlsProbe` per listed domain runs concurrently and the report names
every broken domain (with its reason and its expiry, even when the chain is invalid)
and warns about the one expiring soon. It needs the ``cryptography`` package to make
the certificates (``pip install cryptography``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sendguard.drills._base import Drill, DrillUnavailable, Goal, Metric, Value
from sendguard.health import HealthRegistry, Status, TlsProbe

__all__ = ["DOMAINS", "DRILL", "LocalCA", "MissingDependency", "TlsServer", "replay"]

DAY = 86400.0


class MissingDependency(DrillUnavailable):
    """The drill needs a package that is not installed; the message says which."""


def _x509() -> Any:
    try:
        from cryptography import x509
    except ImportError as missing:  # pragma: no cover - the test extra installs it
        raise MissingDependency(
            "the tls-expiry drill makes certificates with the cryptography package: "
            "pip install cryptography"
        ) from missing
    return x509


class LocalCA:
    """A throwaway certificate authority that issues certificates with chosen dates."""

    def __init__(self, now: float | None = None) -> None:
        x509 = _x509()
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._now = time.time() if now is None else now
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sendguard drill CA")])
        self._name = name
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._moment(-1)).not_valid_after(self._moment(3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )  # fmt: skip

    def _moment(self, days: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._now + days * DAY, dt.UTC)

    @property
    def pem(self) -> bytes:
        """The CA certificate (trust it with ``cafile``)."""
        from cryptography.hazmat.primitives.serialization import Encoding

        pem: bytes = self.certificate.public_bytes(Encoding.PEM)
        return pem

    def issue(
        self, host: str, *, valid_from: float = -30, valid_until: float = 90,
        self_signed: bool = False,
    ) -> tuple[bytes, bytes]:  # fmt: skip
        """(certificate PEM, key PEM) for `host`, valid between the two offsets in days."""
        x509 = _x509()
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject if self_signed else self._name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self._moment(valid_from)).not_valid_after(self._moment(valid_until))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        )  # fmt: skip
        cert = builder.sign(key if self_signed else self._key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )  # fmt: skip
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


class TlsServer:
    """A TLS server on 127.0.0.1 that completes handshakes with a certificate per SNI name.

    It only shakes hands (then closes): enough for a certificate probe. Use it as a
    context manager; `port` is where it listens.
    """

    def __init__(self, certificates: Mapping[str, tuple[bytes, bytes]]) -> None:
        if not certificates:
            raise ValueError("TlsServer needs at least one certificate")
        self._dir = tempfile.TemporaryDirectory(prefix="sendguard-tls-")
        self._contexts: dict[str, ssl.SSLContext] = {}
        for index, (host, (cert, key)) in enumerate(certificates.items()):
            cert_path, key_path = (
                Path(self._dir.name, f"{index}.crt"),
                Path(self._dir.name, f"{index}.key"),
            )
            cert_path.write_bytes(cert)
            key_path.write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert_path, key_path)
            self._contexts[host] = context
        self._default = next(iter(self._contexts.values()))
        self._default.sni_callback = self._pick
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name="sendguard-tls-server", daemon=True
        )

    def _pick(
        self, conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext
    ) -> None:
        if name in self._contexts:
            conn.context = self._contexts[name]

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with raw, contextlib.suppress(OSError):
                raw.settimeout(2.0)
                with self._default.wrap_socket(raw, server_side=True):
                    pass

    def __enter__(self) -> TlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()
        self._dir.cleanup()


@dataclass(frozen=True, slots=True)
class Domain:
    """One tracking domain of the drill and what happened to its certificate."""

    host: str
    fault: str
    """``valid``, ``expired``, ``wrong-host``, ``self-signed`` or ``expiring``."""

    @property
    def broken(self) -> bool:
        """Whether browsers refuse it now."""
        return self.fault in ("expired", "wrong-host", "self-signed")


DOMAINS: tuple[Domain, ...] = tuple(
    Domain(f"links-{n}.example.test", fault)
    for n, fault in enumerate(
        ["valid", "expired", "valid", "wrong-host", "expired", "self-signed", "valid",
         "expiring", "expired", "valid"]
    )
)  # fmt: skip
"""The ten domains (``links-0`` is the main site the incident's monitor watched)."""


def _certificates(ca: LocalCA) -> dict[str, tuple[bytes, bytes]]:
    made = {}
    for domain in DOMAINS:
        if domain.fault == "expired":
            made[domain.host] = ca.issue(domain.host, valid_from=-90, valid_until=-1)
        elif domain.fault == "wrong-host":
            made[domain.host] = ca.issue("old-target.herokudns.test")
        elif domain.fault == "self-signed":
            made[domain.host] = ca.issue(domain.host, self_signed=True)
        elif domain.fault == "expiring":
            made[domain.host] = ca.issue(domain.host, valid_until=5)
        else:
            made[domain.host] = ca.issue(domain.host)
    return made


METRICS = (
    Metric("broken_found", "broken domains reported", "domains"),
    Metric("broken_missed", "broken domains missed", "domains"),
    Metric("expiring_flagged", "domains flagged as expiring soon", "domains"),
    Metric("false_alarms", "valid domains reported failing", "domains"),
    Metric("detect_s", "time to a report naming them", "s", 2),
)
BY_KEY = {metric.key: metric for metric in METRICS}


def replay(*, guarded: bool, scale: float) -> Mapping[str, Value]:
    """Serve the ten domains and check them as the incident's monitor (or sendguard) would."""
    ca = LocalCA()
    with tempfile.NamedTemporaryFile(suffix=".pem") as cafile:
        cafile.write(ca.pem)
        cafile.flush()
        with TlsServer(_certificates(ca)) as server:
            watched: Sequence[Domain] = DOMAINS if guarded else DOMAINS[:1]
            probes = [TlsProbe(d.host, server.port, connect_to="127.0.0.1", cafile=cafile.name,
                               timeout=2.0) for d in watched]  # fmt: skip
            registry = HealthRegistry(probes, hooks=[])
            started = time.monotonic()
            report = registry.check_now()
            took = time.monotonic() - started
    status = {
        d.host: report.check(probe.name).status for d, probe in zip(watched, probes, strict=True)
    }
    broken = [d for d in DOMAINS if d.broken]
    found = sum(status.get(d.host) is Status.FAIL for d in broken)
    valid = [d for d in watched if d.fault == "valid"]
    return {
        "broken_found": found,
        "broken_missed": len(broken) - found,
        "expiring_flagged": sum(
            status.get(d.host) is Status.WARN for d in DOMAINS if d.fault == "expiring"
        ),
        "false_alarms": sum(status[d.host] is not Status.PASS for d in valid),
        "detect_s": round(took, 2) if found else None,
    }


DRILL = Drill(
    name="tls-expiry",
    incident="tracking domains' TLS certificates go invalid; users notice first (#4)",
    metrics=METRICS,
    goals=(
        Goal.at_most(BY_KEY["broken_missed"], 0),
        Goal.at_least(BY_KEY["expiring_flagged"], 1),
        Goal.at_most(BY_KEY["false_alarms"], 0),
        Goal.at_most(BY_KEY["detect_s"], 5.0),
    ),
    replay=replay,
    headline="broken_missed",
    min_scale=0.05,
)
