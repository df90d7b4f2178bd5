"""``sendguard db top | kill`` against the test bed's Postgres, through a parser with only the
db group wired in. (Filling every slot is proven in tests/health/test_exhaustion.py.)"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import psycopg
import pytest

from sendguard.cli._db import register
from sendguard.testing.servers import PostgresServer, free_port

pytestmark = pytest.mark.postgres
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


@pytest.fixture
def workers(
    postgres_server: PostgresServer, postgres_dsn: str
) -> Iterator[list[psycopg.Connection]]:
    held = [psycopg.connect(postgres_dsn, application_name=f"cli-worker-{n}", autocommit=n == 1)
            for n in range(2)]  # fmt: skip
    held[0].execute("SELECT 1")  # idle in transaction
    yield held
    for conn in held:
        conn.close()


def test_top_lists_sessions_longest_first(workers, postgres_dsn, capsys: Capture) -> None:
    assert run(["db", "top", "--dsn", postgres_dsn]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("connections: ")
    assert "reserved slots via superuser" in lines[0]
    assert lines[1].split()[:4] == ["pid", "role", "application", "state"]
    assert lines[2].split()[2:6] == ["cli-worker-0", "idle", "in", "transaction"]


def test_kill_dry_run_then_execute(workers, postgres_dsn, capsys: Capture) -> None:
    argv = ["db", "kill", "--dsn", postgres_dsn, "--application", "cli-worker-*"]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert out.count("would terminate") == 2  # both idle: nothing to cancel
    assert "nothing was signalled: add --execute to act" in out
    workers[1].execute("SELECT 1")  # untouched by the dry run
    assert run([*argv, "--state", "idle in transaction", "--execute", "--grace", "0.2s"]) == 0
    out = capsys.readouterr().out
    assert "cli-worker-0" in out and "cli-worker-1" not in out
    assert out.rstrip().endswith("1 terminated, 0 cancelled, 0 ended on their own, 0 not permitted")
    with pytest.raises(psycopg.OperationalError):
        workers[0].execute("SELECT 1")
    workers[1].execute("SELECT 1")


def test_usage_errors(postgres_dsn, capsys: Capture, monkeypatch) -> None:
    assert run(["db", "kill", "--dsn", postgres_dsn]) == 2
    assert "no filter given" in capsys.readouterr().err
    assert run(["db", "kill", "--dsn", postgres_dsn, "--state", "sleeping"]) == 2
    monkeypatch.delenv("SENDGUARD_ADMIN_DSN", raising=False)
    assert run(["db", "top"]) == 2
    assert "SENDGUARD_ADMIN_DSN" in capsys.readouterr().err


def test_unreachable_database_exits_1_with_advice(capsys: Capture, monkeypatch) -> None:
    monkeypatch.setenv("SENDGUARD_ADMIN_DSN", f"postgresql://x@127.0.0.1:{free_port()}/postgres")
    assert run(["db", "top"]) == 1
    err = capsys.readouterr().err
    assert "cannot open the admin connection" in err
    assert "reserved slots" in err
