"""TLS certificates made in the test, served on loopback: valid, expired, wrong host,
self-signed, expiring in five days; and the DER reader against the certificates' dates."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.drills.tls_expiry import LocalCA, TlsServer
from sendguard.health import ProbeResult, Status, TlsProbe, run_probe, tls_probes
from sendguard.health._report import format_time
from sendguard.health._x509 import CertificateError, validity

NOW = float(int(time.time()))  # OpenSSL checks dates against the real clock
HOSTS: dict[str, dict[str, Any]] = {
    "good.test": {"valid_from": -30, "valid_until": 90},
    "expired.test": {"valid_from": -90, "valid_until": -2},
    "soon.test": {"valid_from": -85, "valid_until": 5},
    "self.test": {"self_signed": True},
}


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA(now=NOW)


@pytest.fixture(scope="module")
def cafile(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(ca.pem)
    return str(path)


@pytest.fixture(scope="module")
def server(ca) -> Iterator[TlsServer]:
    certificates = {host: ca.issue(host, **options) for host, options in HOSTS.items()}
    certificates["moved.test"] = ca.issue("elsewhere.test")  # DNS now points at a stranger
    with TlsServer(certificates) as running:
        yield running


class FixedClock:
    def monotonic(self) -> float:
        return 0.0

    def wall(self) -> float:
        return NOW

    def sleep(self, seconds: float) -> None:
        raise AssertionError("not expected")

    async def asleep(self, seconds: float) -> None:
        raise AssertionError("not expected")


def check(server: TlsServer, cafile: str, host: str) -> ProbeResult:
    probe = TlsProbe(host, server.port, connect_to="127.0.0.1", cafile=cafile, clock=FixedClock(),
                     timeout=2.0)  # fmt: skip
    return run_probe(probe)


def test_a_valid_certificate_passes_with_days_left(server, cafile) -> None:
    result = check(server, cafile, "good.test")
    assert result.status is Status.PASS
    assert result.observed_value == pytest.approx(90, abs=0.01)
    assert result.observed_unit == "d"
    assert result.details["verified"] is True


def test_an_expired_certificate_fails_and_says_when_it_expired(server, cafile) -> None:
    result = check(server, cafile, "expired.test")
    assert result.status is Status.FAIL
    assert result.message.startswith("invalid certificate: certificate has expired")
    assert result.message.endswith("it expires 2.0 days ago")
    assert result.observed_value == pytest.approx(-2, abs=0.01)


def test_a_wrong_host_fails_and_still_reports_the_expiry(server, cafile) -> None:
    result = check(server, cafile, "moved.test")
    assert result.status is Status.FAIL
    assert "Hostname mismatch" in result.message
    assert result.details["verified"] is False
    assert result.observed_value == pytest.approx(90, abs=0.01)


def test_a_self_signed_certificate_fails(server, cafile) -> None:
    result = check(server, cafile, "self.test")
    assert result.status is Status.FAIL
    assert "self-signed" in result.message or "self signed" in result.message
    assert result.observed_value == pytest.approx(90, abs=0.01)


def test_expiring_in_five_days_warns(server, cafile) -> None:
    result = check(server, cafile, "soon.test")
    assert result.status is Status.WARN
    assert result.message.startswith("the certificate expires in 5.0 days")
    assert result.details["not_after"] == format_time(NOW + 5 * 86400)


def test_the_system_trust_store_does_not_know_the_local_ca(server) -> None:
    probe = TlsProbe("good.test", server.port, connect_to="127.0.0.1", clock=FixedClock())
    result = run_probe(probe)
    assert result.status is Status.FAIL
    assert "unable to get local issuer certificate" in result.message


def test_no_tls_on_the_port_fails_with_the_reason() -> None:
    with socket.create_server(("127.0.0.1", 0)) as plain:
        port = plain.getsockname()[1]
        result = run_probe(TlsProbe("plain.test", port, connect_to="127.0.0.1", timeout=0.3))
    assert result.status is Status.FAIL
    assert result.message.startswith("no TLS handshake with plain.test:")


def test_tls_probes_parses_hosts_and_ports() -> None:
    probes = tls_probes(["a.example.com", "b.example.com:8443"], warn_days=30)
    assert [(p.name, p.port) for p in probes] == [("tls/a.example.com", 443),
                                                  ("tls/b.example.com/8443", 8443)]  # fmt: skip
    assert probes[0].days.warn == 30
    with pytest.raises(ConfigError, match="host:port"):
        tls_probes(["a.example.com:https"])
    with pytest.raises(ConfigError, match=r"Thresholds\.warn=3"):
        TlsProbe("x.test", warn_days=3, fail_days=14)


@settings(max_examples=25, deadline=None)
@given(st.integers(-20_000, 20_000), st.integers(1, 40_000))
def test_the_der_reader_agrees_with_the_certificate(start_days, length) -> None:
    ca = LocalCA(now=NOW)
    cert, _ = ca.issue("x.test", valid_from=start_days, valid_until=start_days + length)
    import ssl

    der = ssl.PEM_cert_to_DER_cert(cert.decode())
    not_before, not_after = validity(der)
    assert not_before == pytest.approx(NOW + start_days * 86400, abs=1)
    assert not_after == pytest.approx(NOW + (start_days + length) * 86400, abs=1)


def test_the_der_reader_refuses_garbage(tmp_path: Path) -> None:
    for junk in (b"", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01\x01"):
        with pytest.raises(CertificateError):
            validity(junk)
