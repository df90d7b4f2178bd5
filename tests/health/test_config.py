"""Probes from a TOML file: every type, environment variables, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sendguard import ConfigError
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

FULL = """
[health]
interval = "2s"
description = "mail api"

[[health.probe]]
type = "postgres"
dsn = "${APP_DSN}"
timeout = "1.5s"
latency_warn = "500ms"

[[health.probe]]
type = "saturation"
dsn = "postgresql://ops@127.0.0.1/postgres"
role = "app"
warn = 0.7

[[health.probe]]
type = "redis"
url = "redis://127.0.0.1:1/0"
critical = false

[[health.probe]]
type = "rq"
url = "redis://127.0.0.1:1/0"
queue = "emails"
age_warn = "5m"

[[health.probe]]
type = "celery"
url = "redis://127.0.0.1:1/0"

[[health.probe]]
type = "heartbeat"
url = "redis://127.0.0.1:1/0"
job = "digest"
every = "15m"

[[health.probe]]
type = "tls"
hosts = ["a.example.com", "b.example.com:8443"]
warn_days = 21

[[health.probe]]
type = "http"
url = "https://links.example.com/health"
expect = [200, 204]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guard.toml"
    path.write_text(text)
    return path


def test_every_probe_type_is_built(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("APP_DSN", "postgresql://app@127.0.0.1/mail")
    with pytest.raises(ConfigError, match="500ms"):  # durations are s, m, h, d
        load_config(write(tmp_path, FULL))
    registry = load_config(write(tmp_path, FULL.replace('"500ms"', "0.5")))
    try:
        kinds = [type(p) for p in registry.probes]
        assert kinds == [
            PostgresProbe, SaturationProbe, RedisProbe, RqBacklogProbe, CeleryBacklogProbe,
            HeartbeatProbe, TlsProbe, TlsProbe, HttpProbe,
        ]  # fmt: skip
        postgres = registry.probes[0]
        assert isinstance(postgres, PostgresProbe)
        assert postgres.dsn == "postgresql://app@127.0.0.1/mail"
        assert (postgres.timeout, postgres.latency.warn) == (1.5, 0.5)
        assert registry.interval == 2.0
        assert registry.description == "mail api"
        saturation = registry.probes[1]
        assert isinstance(saturation, SaturationProbe)
        assert saturation.policy.utilization.warn == 0.7 and saturation.role == "app"
        assert registry.probes[2].critical is False
        rq = registry.probes[3]
        assert isinstance(rq, RqBacklogProbe) and rq.age.warn == 300
        heartbeat = registry.probes[5]
        assert isinstance(heartbeat, HeartbeatProbe) and heartbeat.every == 900
        assert [p.name for p in registry.probes[6:8]] == ["tls/a.example.com",
                                                          "tls/b.example.com/8443"]  # fmt: skip
        http = registry.probes[8]
        assert isinstance(http, HttpProbe) and tuple(http.expect) == (200, 204)
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\n", "no \\[health\\] table"),
        ("[health]\nintervall = 5\n", "unknown keys: intervall"),
        ('[health]\n[[health.probe]]\ntype = "mysql"\n', "type must be one of"),
        ('[health]\n[[health.probe]]\ntype = "postgres"\n', "needs 'dsn'"),
        ('[health]\n[[health.probe]]\ntype = "postgres"\ndsn = "x"\ntimout = 1\n',
         "unknown keys: timout"),
        ('[health]\n[[health.probe]]\ntype = "postgres"\ndsn = "${NOT_SET_ANYWHERE}"\n',
         "NOT_SET_ANYWHERE"),
        ('[health]\n[[health.probe]]\ntype = "heartbeat"\nurl = "redis://x"\njob = "j"\n',
         "needs 'every'"),
        ("[health\n", "cannot read health config"),
    ],
)  # fmt: skip
def test_errors_name_what_is_wrong(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))
