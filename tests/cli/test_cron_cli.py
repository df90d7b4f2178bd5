"""``sendguard cron status``: heartbeats recorded in real Redis, read from the command line."""

from __future__ import annotations

import argparse
import json

import pytest

from sendguard.cli._cron import register
from sendguard.jobs import Heartbeats
from sendguard.jobs.redis_store import RedisHeartbeatStore
from sendguard.testing import FakeClock
from sendguard.testing.servers import free_port

Capture = pytest.CaptureFixture[str]


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sendguard")
    register(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(list(argv))
        status: int = args.run(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return status


@pytest.fixture
def heartbeats(redis_url) -> Heartbeats:
    """Jobs that ran long ago (a clock in the past), so the real clock finds them stalled."""
    past = FakeClock(wall=1_000_000.0)
    board = Heartbeats(RedisHeartbeatStore(redis_url), clock=past, hooks=[])
    with board.heartbeat("digest", every="5m", grace="1m"):
        past.advance(4)
    return board


@pytest.mark.redis
def test_an_empty_store_says_so(redis_url, capsys: Capture):
    assert run("cron", "status", "--store", redis_url) == 0
    assert capsys.readouterr().out.strip() == "no cron job has recorded a heartbeat yet"


@pytest.mark.redis
def test_healthy_jobs_exit_0(redis_url, capsys: Capture):
    board = Heartbeats(RedisHeartbeatStore(redis_url), hooks=[])
    with board.heartbeat("purge-bounces", every="1h"):
        pass
    assert run("cron", "status", "--store", redis_url) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:2] == ["purge-bounces", "ok"]
    assert "1 jobs: 0 stalled or failing, 0 late" in out


@pytest.mark.redis
def test_a_stalled_job_is_listed_first_and_exits_1(redis_url, heartbeats, capsys: Capture):
    board = Heartbeats(RedisHeartbeatStore(redis_url), hooks=[])
    with board.heartbeat("purge-bounces", every="1h"):
        pass
    assert run("cron", "status", "--store", redis_url) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:2] == ["digest", "stalled"]
    assert "no run finished for" in lines[2]
    assert lines[3].split()[:2] == ["purge-bounces", "ok"]
    assert run("cron", "status", "--store", redis_url, "--problems", "--json") == 1
    (only,) = json.loads(capsys.readouterr().out)
    assert (only["name"], only["state"], only["every_s"], only["grace_s"]) == (
        "digest",
        "stalled",
        300.0,
        60.0,
    )
    assert only["last_duration_s"] == 4.0


@pytest.mark.redis
def test_a_failing_job_exits_1(redis_url, capsys: Capture):
    board = Heartbeats(RedisHeartbeatStore(redis_url), hooks=[])
    with pytest.raises(RuntimeError), board.heartbeat("sync", every="10m"):
        raise RuntimeError("relay refused")
    assert run("cron", "status", "--store", redis_url) == 1
    out = capsys.readouterr().out
    assert "failing" in out
    assert "RuntimeError: relay refused" in out


def test_the_store_is_required(capsys: Capture, monkeypatch):
    monkeypatch.delenv("SENDGUARD_STORE", raising=False)
    assert run("cron", "status") == 2
    assert "pass --store" in capsys.readouterr().err


def test_an_unreachable_store_exits_1(capsys: Capture):
    assert run("cron", "status", "--store", f"redis://127.0.0.1:{free_port()}/0") == 1
    assert "the heartbeat store did not answer" in capsys.readouterr().err
