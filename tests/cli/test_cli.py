"""The ``sendguard`` command: drills, breaker controls on a real Redis, usage errors."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator, Mapping
from types import MappingProxyType

import pytest

from sendguard.breakers import BreakerOpen, BreakerRegistry, State
from sendguard.cli import main
from sendguard.cli._breaker import parse_duration
from sendguard.drills import DRILLS, Drill, Goal, Metric, Value
from sendguard.testing.servers import free_port

Capture = pytest.CaptureFixture[str]


# --- drill -----------------------------------------------------------------------------


def test_drill_list(capsys: Capture) -> None:
    assert main(["drill", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.split()[0] == "provider-outage"
    assert "times out" in out


def test_drill_by_name_prints_its_table_and_passes(capsys: Capture) -> None:
    assert main(["drill", "provider-outage", "--scale", "0.25"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("drill provider-outage (scale 0.25):")
    assert "p95 send latency" in out
    assert "FAIL  " not in out
    assert out.rstrip().endswith("PASS: 6 of 6 targets met")


def test_drill_all_ends_with_a_summary(capsys: Capture) -> None:
    assert main(["drill", "--all", "--scale", "0.25"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    rows = lines[-len(DRILLS) :]
    assert lines[-len(DRILLS) - 2].split()[:3] == ["drill", "result", "targets"]
    assert sorted(row.split()[0] for row in rows) == sorted(DRILLS)
    assert all(row.split()[1] == "PASS" for row in rows)
    assert ["provider-outage", "PASS", "6/6"] in [row.split()[:3] for row in rows]


def _failing_drill() -> Drill:
    metric = Metric("errors", "errors", "calls")

    def replay(*, guarded: bool, scale: float) -> Mapping[str, Value]:
        return {"errors": 3}

    return Drill(
        name="always-fails",
        incident="a guard that does not help",
        metrics=(metric,),
        goals=(Goal.at_most(metric, 0),),
        replay=replay,
        headline="errors",
    )


@pytest.fixture
def with_failing_drill(monkeypatch: pytest.MonkeyPatch) -> None:
    drills = {**DRILLS, "always-fails": _failing_drill()}
    monkeypatch.setattr("sendguard.cli._drill.DRILLS", MappingProxyType(drills))


@pytest.mark.usefixtures("with_failing_drill")
def test_drill_all_exits_1_when_a_target_is_missed(capsys: Capture) -> None:
    assert main(["drill", "--all", "--scale", "0.25"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: 0 of 1 targets met" in out
    assert out.rstrip().splitlines()[-1].split()[:2] == ["always-fails", "FAIL"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["drill", "nope"], "no drill named 'nope'; known drills: provider-outage"),
        (["drill"], "one of the arguments NAME --all --list is required"),
        (["drill", "provider-outage", "--all"], "not allowed with argument NAME"),
        (["drill", "provider-outage", "--scale", "5"], "between 0.25 and 1, got 5.0"),
        (["drill", "provider-outage", "--scale", "lots"], "invalid float value: 'lots'"),
        ([], "required: COMMAND"),
    ],
)
def test_drill_usage_errors_exit_2(argv: list[str], message: str, capsys: Capture) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


@pytest.mark.slow
def test_demo_explains_runs_the_pipeline_then_sums_up_every_drill(capsys: Capture) -> None:
    from sendguard.drills import DRILLS

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sendguard puts reliability guards")
    assert out.index("sendguard puts") < out.index("duplicates at the sinks: 0")
    summary = out[out.index("drill  ") :].splitlines()
    assert [line.split()[0] for line in summary[2:]] == list(DRILLS)  # one row per drill
    assert all(line.split()[1] == "PASS" for line in summary[2:])


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sendguard", "drill", "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("provider-outage")


# --- durations -------------------------------------------------------------------------
# (parsing and formatting are tested in tests/_core/test_durations.py)


def test_parse_duration_is_an_argparse_type() -> None:
    assert parse_duration("30m") == 1800
    with pytest.raises(argparse.ArgumentTypeError, match="'soon'"):
        parse_duration("soon")


# --- breaker ---------------------------------------------------------------------------


@pytest.fixture
def registry(redis_url: str) -> Iterator[BreakerRegistry]:
    """A worker's registry on the shared store, as the app would hold it."""
    worker = BreakerRegistry(store=redis_url, hooks=[])
    yield worker
    worker.store.close()


@pytest.mark.redis
def test_open_is_seen_by_workers_then_close_clear_and_reset(
    redis_url: str, registry: BreakerRegistry, capsys: Capture
) -> None:
    name = "provider:smtp-primary"
    registry.get(name).call(lambda: "sent")  # a worker has used it
    argv = ["breaker", "open", name, "--for", "30m", "--reason", "relay down", "--store", redis_url]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "'provider:smtp-primary' is forced open for 30m 00s (relay down)" in captured.out
    assert captured.err == ""  # a known name: no warning

    info = registry.info(name)
    assert (info.state, info.override_reason) == (State.FORCED_OPEN, "relay down")
    assert info.override_remaining == pytest.approx(1800, abs=5)
    registry.get(name).refresh()  # a worker would on its own within sync_interval
    with pytest.raises(BreakerOpen, match="relay down"):
        registry.get(name).call(lambda: "sent")

    assert main(["breaker", "list", "--store", redis_url]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["name", "state", "reason", "override", "reason", "time", "left"]
    assert rows[2].split()[:2] == [name, "forced_open"]
    assert "relay down" in rows[2]
    assert rows[2].endswith(("30m 00s", "29m 59s"))

    argv = ["breaker", "close", name, "--reason", "false alarm", "--store", redis_url]
    assert main(argv) == 0
    assert "forced closed until cleared" in capsys.readouterr().out
    info = registry.info(name)
    assert (info.state, info.override_remaining) == (State.FORCED_CLOSED, None)

    assert main(["breaker", "clear", name, "--store", redis_url]) == 0
    assert registry.info(name).override is None

    registry.force_open(name, "again", for_=60)
    assert main(["breaker", "reset", name, "--store", redis_url]) == 0
    assert "reset; it is closed with no override" in capsys.readouterr().out
    info = registry.info(name)
    assert (info.state, info.override, info.reason) == (State.CLOSED, None, "reset")
    registry.get(name).refresh()
    assert registry.get(name).call(lambda: "sent") == "sent"


@pytest.mark.redis
def test_store_comes_from_the_environment(
    redis_url: str, registry: BreakerRegistry, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.setenv("SENDGUARD_STORE", redis_url)
    argv = ["breaker", "open", "route:GET /v1/x", "--for", "90s", "--reason", "storm"]
    assert main(argv) == 0
    assert "warning: no worker has used a breaker named 'route:GET /v1/x'" in (
        capsys.readouterr().err
    )
    info = registry.info("route:GET /v1/x")
    assert info.state is State.FORCED_OPEN
    assert info.override_remaining == pytest.approx(90, abs=5)


@pytest.mark.redis
def test_list_of_an_empty_store(redis_url: str, capsys: Capture) -> None:
    assert main(["breaker", "list", "--store", redis_url]) == 0
    assert capsys.readouterr().out.startswith("no breakers in redis://")


@pytest.mark.redis
def test_unknown_name_warns_with_the_likely_one(
    redis_url: str, registry: BreakerRegistry, capsys: Capture
) -> None:
    registry.provider("smtp").call(lambda: "sent")
    argv = ["breaker", "open", "smtp", "--for", "1m", "--reason", "r", "--store", redis_url]
    assert main(argv) == 0
    assert "did you mean 'provider:smtp'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["open", "x", "--for", "3x", "--reason", "r"], "argument --for: bad duration '3x'"),
        (["open", "x", "--reason", "r"], "required: --for"),
        (["open", "x", "--for", "1m"], "required: --reason"),
        (["open", "x", "--for", "1m", "--reason", "  "], "--reason must say why"),
        (["close", "x", "--for=-1m", "--reason", "r"], "bad duration '-1m'"),
    ],
)
@pytest.mark.redis
def test_breaker_usage_errors_exit_2(
    redis_url: str, argv: list[str], message: str, capsys: Capture
) -> None:
    assert main(["breaker", *argv, "--store", redis_url]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("store", [None, "", "memory://", "memory"])
def test_breaker_commands_need_a_shared_store(
    store: str | None, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    monkeypatch.delenv("SENDGUARD_STORE", raising=False)
    argv = ["breaker", "list"] if store is None else ["breaker", "list", "--store", store]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "act on the shared store your workers use" in err
    assert "--store redis://" in err
    assert "SENDGUARD_STORE" in err


def test_unknown_store_scheme_is_a_usage_error_and_hides_the_password(capsys: Capture) -> None:
    assert main(["breaker", "list", "--store", "http://ops:hunter2@cache:80/0"]) == 2
    err = capsys.readouterr().err
    assert "unknown store 'http://ops:***@cache:80/0'" in err
    assert "hunter2" not in err


def test_unreachable_store_exits_1(capsys: Capture) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    assert main(["breaker", "open", "x", "--for", "1m", "--reason", "r", "--store", url]) == 1
    assert "the breaker store did not answer" in capsys.readouterr().err
