"""TLS certificates: valid, expired, wrong host, expiring soon (served here on loopback)."""

import tempfile

from sendguard.drills.tls_expiry import LocalCA, TlsServer
from sendguard.health import HealthRegistry, TlsProbe

ca = LocalCA()
certificates = {
    "links-0.example.test": ca.issue("links-0.example.test"),
    "links-1.example.test": ca.issue("links-1.example.test", valid_from=-90, valid_until=-1),
    "links-2.example.test": ca.issue("old-target.example.test"),
    "links-3.example.test": ca.issue("links-3.example.test", valid_until=5),
}
with tempfile.NamedTemporaryFile(suffix=".pem") as cafile, TlsServer(certificates) as server:
    cafile.write(ca.pem)
    cafile.flush()
    probes = [
        # In production: TlsProbe("links-1.example.com") or tls_probes([...hosts...]).
        TlsProbe(
            host,
            server.port,
            name=f"tls/{host}",
            connect_to="127.0.0.1",
            cafile=cafile.name,
            warn_days=14,
        )
        for host in certificates
    ]
    report = HealthRegistry(probes).check_now()
for check in report.checks:
    days = check.result.observed_value if check.result else None
    print(f"{check.name}: {check.status.value}, {days} days: {check.message or 'ok'}")
