"""``sendguard health check | beat``, through a parser with only the health group wired in."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import redis

from sendguard.cli._health import register
from sendguard.health import FunctionProbe, HealthRegistry, ProbeResult, Status, wsgi_app
from sendguard.testing.servers import free_port

Capture = pytest.CaptureFixture[str]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sendguard")
    register(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
        status: int = args.run(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return status


@pytest.mark.postgres
def test_check_a_fresh_postgres_connection(postgres_dsn, capsys: Capture) -> None:
    assert run(["health", "check", "--postgres", postgres_dsn]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["status", "check", "critical", "observed", "message"]
    assert lines[1].startswith("warn    postgres:connection")  # the test bed's superuser
    assert "connected as a superuser" in lines[1]
    assert lines[-1] == "readiness: warn (HTTP 200)"
    assert run(["health", "check", "--postgres", postgres_dsn, "--fail-on-warn"]) == 1


def test_a_failing_check_exits_1_and_json_is_health_json(capsys: Capture) -> None:
    port = free_port()
    assert run(["health", "check", "--tls", f"127.0.0.1:{port}", "--timeout", "1s",
                "--json"]) == 1  # fmt: skip
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "fail"
    check = document["checks"][f"tls/127.0.0.1/{port}:daysToExpiry"][0]
    assert check["output"].startswith(f"no TLS handshake with 127.0.0.1:{port}")


def test_nothing_to_check_is_a_usage_error(capsys: Capture, monkeypatch) -> None:
    monkeypatch.delenv("SENDGUARD_HEALTH_CONFIG", raising=False)
    assert run(["health", "check"]) == 2
    assert "nothing to check" in capsys.readouterr().err


@pytest.mark.redis
def test_check_from_a_config_file(redis_url, tmp_path, capsys: Capture, monkeypatch) -> None:
    config = tmp_path / "guard.toml"
    config.write_text(f'[health]\n[[health.probe]]\ntype = "redis"\nurl = "{redis_url}"\n')
    monkeypatch.setenv("SENDGUARD_HEALTH_CONFIG", str(config))
    assert run(["health", "check"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("pass    redis:memory")
    config.write_text("[health]\nbogus = 1\n")
    assert run(["health", "check", "--config", str(config)]) == 2
    assert "unknown keys: bogus" in capsys.readouterr().err


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def app_server() -> Iterator[tuple[str, dict[str, Status]]]:
    state = {"db": Status.PASS}
    probe = FunctionProbe(lambda: ProbeResult(state["db"], "db is down"), "db")
    registry = HealthRegistry([probe], interval=60, hooks=[])
    registry.check_now()
    server: WSGIServer = make_server("127.0.0.1", 0, wsgi_app(registry, start=False),
                                     handler_class=QuietHandler)  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/readyz", state
    server.shutdown()
    server.server_close()
    thread.join(5)
    registry.close()


def test_url_asks_a_running_app(app_server, capsys: Capture) -> None:
    url, _ = app_server
    assert run(["health", "check", "--url", url]) == 0
    assert capsys.readouterr().out.strip() == f"{url}: pass (HTTP 200)"
    nowhere = url.replace("readyz", "nowhere")
    assert run(["health", "check", "--url", nowhere]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"{nowhere}: fail (HTTP 404)"
    assert run(["health", "check", "--url", url, "--postgres", "postgresql://x"]) == 2


def test_url_of_a_failing_app_exits_1(capsys: Capture) -> None:
    probe = FunctionProbe(lambda: ProbeResult(Status.FAIL, "db is down"), "db")
    registry = HealthRegistry([probe], interval=60, hooks=[])
    registry.check_now()
    server = make_server(
        "127.0.0.1", 0, wsgi_app(registry, start=False), handler_class=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/readyz"
        assert run(["health", "check", "--url", url]) == 1
        assert capsys.readouterr().out.splitlines() == [f"{url}: fail (HTTP 503)",
                                                        "fail: db: db is down"]  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert run(["health", "check", "--url", f"http://127.0.0.1:{free_port()}/readyz"]) == 1
    assert "did not answer" in capsys.readouterr().err


@pytest.mark.redis
def test_beat_records_a_heartbeat(redis_url, redis_client, capsys: Capture, monkeypatch) -> None:
    assert run(["health", "beat", "nightly-digest", "--store", redis_url]) == 0
    assert capsys.readouterr().out.strip() == "heartbeat recorded for 'nightly-digest'"
    assert redis_client.exists("sendguard:{heartbeat:nightly-digest}:last") == 1
    monkeypatch.delenv("SENDGUARD_STORE", raising=False)
    assert run(["health", "beat", "x"]) == 2
    assert run(["health", "beat", "x", "--store", f"redis://127.0.0.1:{free_port()}/0"]) == 1
    assert isinstance(redis_client, redis.Redis)
