"""The pure core: thresholds, statuses, aggregation and the health+json document."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard.health import (
    CheckState,
    HealthReport,
    ProbeResult,
    Status,
    Thresholds,
    aggregate,
)
from sendguard.health._report import format_time, liveness_report

statuses = st.sampled_from(list(Status))
NOW = 1_000.0


def state(name: str, status: Status | None, *, critical: bool = True, age: float = 0.0,
          max_age: float = 10.0) -> CheckState:  # fmt: skip
    result = None if status is None else ProbeResult(status, f"{name} says {status.value}")
    if result is not None:
        result = result.stamped(duration=0.01, time=1_767_225_600.5, checked_at=NOW - age)
    return CheckState(name, critical, max_age, result)


# --- thresholds ---------------------------------------------------------------------------


def test_thresholds_above_and_below() -> None:
    above = Thresholds.above(0.8, 0.95)
    assert [above.judge(v) for v in (0.5, 0.8, 0.9, 0.95, 1.2)] == [
        Status.PASS, Status.WARN, Status.WARN, Status.FAIL, Status.FAIL,
    ]  # fmt: skip
    below = Thresholds.below(14, 3)
    assert [below.judge(v) for v in (30, 14, 5, 3, -2)] == [
        Status.PASS, Status.WARN, Status.WARN, Status.FAIL, Status.FAIL,
    ]  # fmt: skip
    assert Thresholds().judge(1e12) is Status.PASS
    assert above.judge(math.nan) is Status.FAIL


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Thresholds.above(0.95, 0.8), "warn=0.95"),
        (lambda: Thresholds.below(3, 14), "warn=3"),
        (lambda: Thresholds.above(math.inf), "Thresholds.warn"),
        (lambda: Thresholds.above(None, True), "Thresholds.fail"),
    ],
)
def test_bad_thresholds_name_the_field(make, field) -> None:
    with pytest.raises(ConfigError, match=field.replace("[", r"\[")):
        make()


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1e9, 1e9), st.booleans())
def test_a_worse_value_never_gets_a_better_status(a, b, value, higher) -> None:
    warn, fail = (min(a, b), max(a, b)) if higher else (max(a, b), min(a, b))
    limits = Thresholds(warn, fail, higher_is_worse=higher)
    worse = value + 1 if higher else value - 1
    assert limits.judge(worse).severity >= limits.judge(value).severity


# --- aggregation ----------------------------------------------------------------------------


@given(st.lists(st.tuples(statuses, st.booleans()), max_size=8))
def test_overall_is_worst_critical_and_non_critical_at_most_warn(checks) -> None:
    states = [state(f"p{i}", s, critical=c) for i, (s, c) in enumerate(checks)]
    report = aggregate(states, NOW)
    critical_worst = Status.worst(s for s, c in checks if c)
    others = [s for s, c in checks if not c]
    expected = Status.worst(
        [critical_worst, *(Status.WARN for s in others if s is not Status.PASS)]
    )
    assert report.status is expected
    assert report.http_status == (503 if expected is Status.FAIL else 200)


@given(st.lists(st.tuples(statuses, st.floats(0, 100)), min_size=1, max_size=6))
def test_a_result_older_than_its_max_age_fails(checks) -> None:
    states = [state(f"p{i}", s, age=age, max_age=10.0) for i, (s, age) in enumerate(checks)]
    report = aggregate(states, NOW)
    for (status, age), check in zip(checks, report.checks, strict=True):
        assert check.stale == (age > 10.0)
        assert check.status is (Status.FAIL if age > 10.0 else status)
    if any(age > 10.0 for _, age in checks):
        assert report.status is Status.FAIL


def test_not_checked_yet_fails_readiness() -> None:
    report = aggregate([state("postgres", None)], NOW)
    assert report.status is Status.FAIL
    assert report.check("postgres").message == "not checked yet"


def test_stale_message_says_why_and_what_it_last_said() -> None:
    check = aggregate([state("redis", Status.PASS, age=31.0, max_age=12.0)], NOW).checks[0]
    assert check.message.startswith("stale: the last result is 31.0s old (max age 12s)")
    assert check.message.endswith("it said pass: redis says pass")


def test_summary_names_the_critical_cause_first() -> None:
    report = aggregate(
        [state("traffic", Status.FAIL, critical=False), state("postgres", Status.FAIL),
         state("redis", Status.PASS)],
        NOW,
    )  # fmt: skip
    assert report.summary() == "fail: postgres: postgres says fail; traffic: traffic says fail"
    assert [c.name for c in report.problems] == ["postgres", "traffic"]


def test_health_json_follows_the_draft() -> None:
    result = ProbeResult(
        Status.WARN, "slow", observed_value=250, observed_unit="ms",
        measurement="responseTime", details={"queue": "emails"},
    ).stamped(duration=0.25, time=1_767_225_600.5, checked_at=NOW)  # fmt: skip
    report = aggregate(
        [CheckState("cassandra", True, 10.0, result, "datastore"), state("ok", Status.PASS)],
        NOW, description="api",
    )  # fmt: skip
    document = json.loads(report.to_json())
    assert document["status"] == "warn"
    assert document["description"] == "api"
    assert document["output"] == "warn: cassandra: slow"
    assert document["checks"]["cassandra:responseTime"] == [
        {
            "componentType": "datastore", "observedValue": 250, "observedUnit": "ms",
            "status": "warn", "time": "2026-01-01T00:00:00.500Z", "output": "slow",
            "critical": True, "durationMs": 250.0, "details": {"queue": "emails"},
        }
    ]  # fmt: skip
    assert "output" not in document["checks"]["ok:status"][0]  # no output on pass


def test_liveness_is_a_bare_pass() -> None:
    assert json.loads(liveness_report().to_json()) == {"status": "pass"}
    assert HealthReport(Status.PASS, ()).summary() == "pass: all 0 checks pass"


def test_format_time_rounds_to_milliseconds() -> None:
    assert format_time(0.0) == "1970-01-01T00:00:00.000Z"
    assert format_time(86_400.9999) == "1970-01-02T00:00:00.999Z"


def test_probe_result_details_are_read_only() -> None:
    result = ProbeResult.passing(details={"a": 1})
    with pytest.raises(TypeError):
        result.details["a"] = 2  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"ProbeResult\.status"):
        ProbeResult("pass")  # type: ignore[arg-type]
