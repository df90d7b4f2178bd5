"""The examples of docs/health.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter, with warnings as errors; the doc shows each
file verbatim under its name. The Postgres example runs against the test bed's cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sendguard.health import (
    CeleryBacklogProbe,
    HeartbeatProbe,
    HttpProbe,
    PostgresProbe,
    RedisProbe,
    RqBacklogProbe,
    SaturationProbe,
    TlsProbe,
    load_config,
)
from tests.docs._examples import Examples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "health.md"
EXAMPLES = ROOT / "docs" / "examples" / "health"
EXAMPLES_SET = Examples("health")
POSTGRES_EXAMPLE = "postgres.py"


def run_example(name: str, **env: str) -> list[str]:
    """Run one example in a fresh interpreter; return its stdout lines."""
    return EXAMPLES_SET.run(name, **env)


def check_quickstart(out: list[str]) -> None:
    assert out == [
        "readiness: pass 200",
        "checks: ['emails-queue:backlog', 'smtp-relay:status']",
        "/readyz: 200 pass",
        "/readyz: 200 warn: emails-queue: 5000 emails waiting",
        '/livez: 200 {"status":"pass"}',
    ]


def check_timeouts_and_staleness(out: list[str]) -> None:
    took = float(re.fullmatch(r"answered in about ([\d.]+)s", out[0]).group(1))  # type: ignore[union-attr]
    assert 0.5 <= took < 1.5
    assert out[1:] == [
        "payments-api: fail timed out after 0.5s",
        "postgres: pass",
        "after 11 s: pass",
        "after 11.5 s: fail True",
    ]


def check_custom_probe(out: list[str]) -> None:
    assert out == ["provider-quota:utilization warn 87.0", "overall: warn 200"]


def check_heartbeats_and_traffic(out: list[str]) -> None:
    assert out == [
        "pass: all 2 checks pass",
        "warn: heartbeat/send-digest: 'send-digest' missed its beat: last one 400s ago, "
        "expected every 300s (+60s grace); tracked-clicks: only 0 in the last 300s, below "
        "the floor of 100",
    ]


def check_tls_certificates(out: list[str]) -> None:
    assert out[:3] == [
        "tls/links-0.example.test: pass, 90.0 days: ok",
        "tls/links-1.example.test: fail, -1.0 days: invalid certificate: certificate has "
        "expired; it expires 1.0 days ago",
        "tls/links-2.example.test: fail, 90.0 days: invalid certificate: Hostname mismatch, "
        "certificate is not valid for 'links-2.example.test'; it expires in 90.0 days",
    ]
    assert out[3].startswith("tls/links-3.example.test: warn, 5.0 days: the certificate "
                             "expires in 5.0 days (")  # fmt: skip


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "quickstart.py": check_quickstart,
    "timeouts_and_staleness.py": check_timeouts_and_staleness,
    "custom_probe.py": check_custom_probe,
    "heartbeats_and_traffic.py": check_heartbeats_and_traffic,
    "tls_certificates.py": check_tls_certificates,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_on_embedded_defaults(name: str) -> None:
    CHECKS[name](run_example(name))


@pytest.mark.postgres
def test_postgres_example_against_a_real_postgres(postgres_dsn: str) -> None:
    out = run_example(POSTGRES_EXAMPLE, SENDGUARD_EXAMPLE_POSTGRES_DSN=postgres_dsn)
    assert out == [
        "postgres:connection: pass (ms)",
        "postgres-saturation:utilization: pass (%)",
        "admin gets into reserved slots as: superuser",
        "[('idle in transaction', 'would terminate')]",
        "[('terminated', 'no query to cancel')]",
        "the stuck session: terminating connection due to administrator command",
    ]


def test_the_config_example_builds_every_probe(monkeypatch) -> None:
    for name in ("DATABASE_URL", "SENDGUARD_ADMIN_DSN"):
        monkeypatch.setenv(name, "postgresql://app@127.0.0.1:1/mail")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    registry = load_config(EXAMPLES / "guard.toml")
    try:
        assert [type(p) for p in registry.probes] == [
            PostgresProbe, SaturationProbe, RedisProbe, RqBacklogProbe, HeartbeatProbe,
            TlsProbe, TlsProbe, TlsProbe, HttpProbe,
        ]  # fmt: skip
        assert CeleryBacklogProbe not in {type(p) for p in registry.probes}
    finally:
        registry.close()


def test_every_example_file_has_a_check() -> None:
    files = {p.name for p in EXAMPLES.glob("*.py")}
    assert files == set(CHECKS) | {POSTGRES_EXAMPLE}


@pytest.mark.parametrize("name", sorted({*CHECKS, POSTGRES_EXAMPLE, "guard.toml"}))
def test_the_doc_shows_each_example_verbatim_under_its_name(name: str) -> None:
    EXAMPLES_SET.assert_shown_verbatim(name)


def test_every_python_block_in_the_doc_is_an_example_file() -> None:
    EXAMPLES_SET.assert_python_blocks_are_files()


def test_the_doc_has_the_role_sql_for_15_and_16() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert "**Postgres 16 and later**" in doc and "**Postgres 15 and earlier**" in doc
    assert "GRANT pg_use_reserved_connections TO sendguard_admin;" in doc
    assert "CREATE ROLE sendguard_admin LOGIN SUPERUSER" in doc
    assert "ALTER ROLE app CONNECTION LIMIT 90;" in doc
