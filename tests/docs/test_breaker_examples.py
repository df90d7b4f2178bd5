"""The examples of docs/breakers.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter (as a reader would run it), with warnings as
errors. The doc must show each file verbatim, under its name, so the two cannot drift.
The one Redis example runs against the test bed's real redis-server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.docs._examples import Examples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "breakers.md"
EXAMPLES = ROOT / "docs" / "examples" / "breakers"
EXAMPLES_SET = Examples("breakers")


def run_example(name: str, **env: str) -> list[str]:
    """Run one example in a fresh interpreter; return its stdout lines."""
    return EXAMPLES_SET.run(name, **env)


def number_after(pattern: str, lines: list[str]) -> float:
    """The number captured by `pattern` in the first line that matches it."""
    for line in lines:
        found = re.search(pattern, line)
        if found:
            return float(found.group(1))
    raise AssertionError(f"no line matches {pattern!r} in {lines}")


# --- one check per example file --------------------------------------------------------


def check_quickstart(out: list[str]) -> None:
    assert out[:3] == [
        f"failed: smtp-primary refused the connection for {c}@example.com" for c in "abc"
    ]
    assert out[3].startswith("refused: provider:smtp-primary is open, retry in about ")
    assert 27 <= number_after(r"retry in about (\d+) s", out) <= 33  # 30 s +- 10 % jitter
    assert out[4] == "analytics: {'opens': 3, 'clicks': 1}"
    assert out[5] == "webhooks breaker: open"


def check_choosing_a_policy(out: list[str]) -> None:
    assert out == [
        "default: failure_rate=0.5 over a time window of 30 s, min_calls=10, open_for=30 s",
        "rate over count(20): 20",
        "rate over time(30): 10",
        "consecutive(5): 5",
        "slow calls: 10",
    ]


def check_classify_outcomes(out: list[str]) -> None:
    assert out == [
        "http-api: open {'success': 2, 'failure': 2, 'ignored': 3, 'slow': 0, 'rejected': 0}",
        "smtp: open {'success': 0, 'failure': 3, 'ignored': 1, 'slow': 0, 'rejected': 0}",
        "smtp after three KeyErrors: closed",
        "slow-api after 5 cancellations: closed "
        "{'success': 0, 'failure': 0, 'ignored': 5, 'slow': 0, 'rejected': 0}",
    ]


def check_half_open(out: list[str]) -> None:
    assert out == [
        "t=0: failed (closed)",
        "t=0: failed (open)",
        "t=4: refused (open), retry in 6 s",
        "t=10: failed (open)",
        "t=30: 250 OK (half_open)",
        "t=30: another call refused (half_open), retry in 1 s",
        "t=30: closed | reason: probes_succeeded",
        "t=30: failed (closed)",
        "t=30: failed (open)",
        "t=71: refused (open), retry in 20 s",
        "t=71: open | reason: half_open_timeout",
    ]


def check_per_scope(out: list[str]) -> None:
    assert out == [
        "route:GET /v1/emails/{id}/analytics -> 0.25 0.5",
        "route:GET /archive/{slug} -> 0.5 2.0",
        "tenant:acct_acme -> consecutive 5",
        "refused: tenant:acct_noisy",
        "imported for acct_quiet",
        "kept: ['tenant:t7', 'tenant:t8', 'tenant:t9']",
    ]


def check_fallback(out: list[str]) -> None:
    assert out == [
        *(f"msg-{n}: failed (primary SMTP server is down), left for retry" for n in (1, 2, 3)),
        "msg-4: sent via secondary",
        "msg-5: sent via secondary",
        *(f"api-{n}: failed (timed out)" for n in (1, 2, 3)),
        "api-4: queued until the API recovers",
    ]


def check_kill_switch(out: list[str]) -> None:
    assert out[0].startswith("refused: circuit breaker 'route:GET /v1/emails/{id}/analytics'")
    assert "forced_open (analytics storm, see incident 2025-11-06)" in out[0]
    assert out[1:] == [
        "retry_after=1800 reason=forced_open",
        "info: state=forced_open override_reason='analytics storm, see incident 2025-11-06' "
        "override_remaining=1800",
        "after 30 min: analytics for em_2",
        "forced closed after 5 failures: forced_closed",
        "override cleared: closed",
        "reset: closed reset",
    ]


def check_modes(out: list[str]) -> None:
    assert out == [
        "route:GET /v1/emails/{id}/analytics: state=metrics_only would_be=open ran=5",
        "route:GET /healthz: state=disabled would_be=closed ran=5",
        "transition: route:GET /v1/emails/{id}/analytics closed -> open (consecutive_failures)",
    ]


def check_adopt_pybreaker(out: list[str]) -> None:
    assert out[0] == "listener: closed -> open"
    assert out[1].startswith("refused: provider:legacy-api, retry in about ")
    assert 58 <= number_after(r"retry in about (\d+) s", out) <= 60
    assert out[2] == "state: open | pybreaker: open"


def check_telemetry_hooks(out: list[str]) -> None:
    assert out[:2] == [
        "event: provider:smtp closed -> open (consecutive_failures)",
        "event: provider:smtp rejected a call (open)",
    ]
    assert set(out[2:]) == {
        "metric: sendguard.breaker.transitions open = 1",
        "metric: sendguard.breaker.rejections open = 1",
        "metric: sendguard.breaker.calls success = 3",
        "metric: sendguard.breaker.calls failure = 2",
        "metric: sendguard.breaker.calls ignored = 0",
        "metric: sendguard.breaker.calls slow = 0",
        "metric: sendguard.breaker.calls rejected = 1",
        "metric: sendguard.breaker.state open = 1",
    }


def check_testing_with_fake_clock(out: list[str]) -> None:
    assert out == [
        "test_fails_over_after_three_failures_and_comes_back: passed",
        "test_slow_calls_trip_without_real_sleeping: passed",
        "test_testing_mode_makes_jitter_repeatable: passed",
    ]


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "quickstart.py": check_quickstart,
    "choosing_a_policy.py": check_choosing_a_policy,
    "classify_outcomes.py": check_classify_outcomes,
    "half_open.py": check_half_open,
    "per_scope.py": check_per_scope,
    "fallback.py": check_fallback,
    "kill_switch.py": check_kill_switch,
    "modes.py": check_modes,
    "adopt_pybreaker.py": check_adopt_pybreaker,
    "telemetry_hooks.py": check_telemetry_hooks,
    "testing_with_fake_clock.py": check_testing_with_fake_clock,
}
REDIS_EXAMPLE = "shared_redis.py"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_on_embedded_defaults(name):
    CHECKS[name](run_example(name))


@pytest.mark.redis
def test_shared_redis_example_against_a_real_redis(redis_url):
    out = run_example(REDIS_EXAMPLE, SENDGUARD_STORE=redis_url)
    assert out[:3] == ["b: 250 OK", "a: open", "b, same instant: 250 OK"]
    assert out[3].startswith("b, 0.5 s later: refused, retry in about ")
    assert 26 <= number_after(r"0\.5 s later: refused, retry in about (\d+) s", out) <= 33
    assert out[4:7] == [
        "b: analytics forced_open",
        "list: provider:smtp-primary open consecutive_failures",
        "list: route:GET /v1/emails/{id}/analytics forced_open analytics storm",
    ]
    keys = [line for line in out if line.startswith("key: ")]
    assert keys[0] == "key: sendguard:{breaker-index}:names zset"
    assert len(keys) == 3
    assert all(re.fullmatch(r"key: sendguard:\{breaker:[^{}]+\}:state hash", k) for k in keys[1:])
    assert out[-1] == (
        "fields: ['gen', 'left', 'ok', 'ov', 'ovr', 'ovu', 'reop', 'since', 'st', 'until', 'why']"
    )
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("sendguard:*") == []  # the example tidies up after itself
    finally:
        client.close()


# --- the doc and the files agree ----------------------------------------------------------


def test_every_example_file_has_a_check():
    files = {p.name for p in EXAMPLES.glob("*.py")}
    assert files == set(CHECKS) | {REDIS_EXAMPLE}


@pytest.mark.parametrize("name", sorted({*CHECKS, REDIS_EXAMPLE}))
def test_the_doc_shows_each_example_verbatim_under_its_name(name):
    EXAMPLES_SET.assert_shown_verbatim(name)


def test_every_python_block_in_the_doc_is_an_example_file():
    EXAMPLES_SET.assert_python_blocks_are_files()


def test_the_doc_names_no_example_that_does_not_exist():
    doc = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"docs/examples/breakers/([\w.]+\.py)", doc))
    assert named, "the doc names no example"
    assert named <= {p.name for p in EXAMPLES.glob("*.py")}


def test_examples_pass_ruff():
    EXAMPLES_SET.assert_ruff_clean(Path(__file__).relative_to(ROOT))


@pytest.mark.slow
def test_examples_pass_mypy_strict():
    EXAMPLES_SET.assert_mypy_strict()
