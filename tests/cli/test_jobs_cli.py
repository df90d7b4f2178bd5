"""``sendguard jobs``: inspect and purge a real RQ backlog; list and resolve ledger unknowns."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os

import pytest
from rq import Queue

from sendguard.cli._jobs import parse_size, register
from sendguard.jobs import EntryState, Ledger
from sendguard.jobs.redis_store import RedisLedgerStore
from sendguard.testing.servers import free_port
from tests.jobs._rq_tasks import send_batch

Capture = pytest.CaptureFixture[str]


def run(*argv: str) -> int:
    """Parse and run a ``jobs`` command the way `sendguard.cli.main` does."""
    parser = argparse.ArgumentParser(prog="sendguard")
    register(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(list(argv))
        status: int = args.run(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    return status


@pytest.fixture
def backlog(redis_client) -> list[str]:
    queue = Queue("five_minutes", connection=redis_client)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    fat = [
        queue.enqueue_at(later, send_batch, {"body": os.urandom(50_000)}, [1]).id for _ in range(4)
    ]
    for n in range(6):
        queue.enqueue(send_batch, n, [n])
    return fat


@pytest.mark.redis
def test_inspect_prints_registries_functions_and_largest_jobs(redis_url, backlog, capsys: Capture):
    assert run("jobs", "inspect", "--redis", redis_url, "--top", "2") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["queue", "registry", "jobs", "data", "memory", "oldest", "missing"]
    assert lines[2].split()[:3] == ["five_minutes", "queued", "6"]
    assert lines[3].split()[:3] == ["five_minutes", "scheduled", "4"]
    assert "10 jobs holding" in out
    assert "tests.jobs._rq_tasks.send_batch    10" in out
    largest = out.split("largest jobs:")[1]
    assert sum(job_id in largest for job_id in backlog) == 2


@pytest.mark.redis
def test_inspect_json(redis_url, backlog, capsys: Capture):
    assert run("jobs", "inspect", "--redis", redis_url, "--json", "--queue", "five_minutes") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["jobs"] == 10
    assert {r["registry"]: r["count"] for r in report["registries"]} == {
        "queued": 6,
        "scheduled": 4,
    }
    assert report["functions"][0]["function"] == "tests.jobs._rq_tasks.send_batch"


@pytest.mark.redis
def test_purge_is_a_dry_run_until_execute(redis_url, redis_client, backlog, capsys: Capture):
    argv = [
        "jobs",
        "purge",
        "--redis",
        redis_url,
        "--function",
        "send_batch",
        "--min-size",
        "40KiB",
    ]
    assert run(*argv) == 0
    out = capsys.readouterr().out
    assert "dry run: 4 jobs" in out
    assert "add --execute" in out
    assert redis_client.zcard("rq:scheduled:five_minutes") == 4
    assert run(*argv, "--execute", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["executed"], report["matched"], report["deleted"]) == (True, 4, 4)
    assert redis_client.zcard("rq:scheduled:five_minutes") == 0
    assert not any(redis_client.exists(f"rq:job:{job_id}") for job_id in backlog)
    assert (
        run("jobs", "purge", "--redis", redis_url, "--function", "send_batch", "--older-than", "1h")
        == 0
    )
    assert capsys.readouterr().out.strip() == "no job matches"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["jobs", "purge", "--redis", "redis://127.0.0.1:1/0"], "no criterion given"),
        (["jobs", "purge", "--redis", "redis://x", "--min-size", "lots"], "bad size 'lots'"),
        (["jobs", "purge", "--redis", "redis://x", "--registry", "all"], "invalid choice"),
        (["jobs", "unknowns", "--store", "memory://"], "pass --store"),
        (["jobs", "resolve", "k", "--store", "redis://x", "--note", "n"], "--sent --not-sent"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys: Capture, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("SENDGUARD_STORE", raising=False)
    assert run(*argv) == 2
    assert message in capsys.readouterr().err


def test_inspect_needs_a_redis(capsys: Capture, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert run("jobs", "inspect") == 2
    assert "pass --redis" in capsys.readouterr().err


def test_an_unreachable_redis_exits_1(capsys: Capture):
    assert run("jobs", "inspect", "--redis", f"redis://127.0.0.1:{free_port()}/0") == 1
    assert "Redis did not answer" in capsys.readouterr().err


def test_sizes_read_as_people_write_them():
    assert [parse_size(t) for t in ("512", "64K", "64KiB", "1.5MB", "2g")] == [
        512,
        65536,
        65536,
        1572864,
        2147483648,
    ]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("64 furlongs")


@pytest.mark.redis
def test_unknowns_are_listed_and_resolved(redis_url, capsys: Capture):
    ledger = Ledger(RedisLedgerStore(redis_url), name="sends", hooks=[])
    for key in ("send:1", "send:2"):
        with ledger.idempotent(key, payload=key) as call:
            call.unknown("connection dropped after DATA")
    assert run("jobs", "unknowns", "--store", redis_url, "--ledger", "sends") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[:3] == ["send:1", "unknown", "1"]
    assert "connection dropped after DATA" in out
    assert "2 entries whose outcome is unknown" in out
    assert (
        run(
            "jobs",
            "resolve",
            "send:1",
            "--store",
            redis_url,
            "--ledger",
            "sends",
            "--sent",
            "--note",
            "in the provider's log",
        )
        == 0
    )
    assert "resolved as completed" in capsys.readouterr().out
    assert ledger.get("send:1").state is EntryState.COMPLETED  # type: ignore[union-attr]
    assert (
        run(
            "jobs",
            "resolve",
            "send:1",
            "--store",
            redis_url,
            "--ledger",
            "sends",
            "--not-sent",
            "--note",
            "again",
        )
        == 1
    )
    assert "is not unknown" in capsys.readouterr().err
    assert run("jobs", "unknowns", "--store", redis_url, "--ledger", "sends", "--json") == 0
    assert [e["key"] for e in json.loads(capsys.readouterr().out)] == ["send:2"]
    ledger.close()


def test_an_unreachable_ledger_store_exits_1(capsys: Capture):
    assert run("jobs", "unknowns", "--store", f"redis://127.0.0.1:{free_port()}/0") == 1
    assert "the ledger store did not answer" in capsys.readouterr().err
