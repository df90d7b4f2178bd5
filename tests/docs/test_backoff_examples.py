"""The examples of docs/backoff.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter (as a reader would run it), with warnings as
errors. The doc must show each file verbatim, under its name, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.docs._examples import Examples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "backoff.md"
EXAMPLES = ROOT / "docs" / "examples" / "backoff"
EXAMPLES_SET = Examples("backoff")


def run_example(name: str) -> list[str]:
    """Run one example in a fresh interpreter; return its stdout lines."""
    return EXAMPLES_SET.run(name)


def number_after(pattern: str, line: str) -> float:
    found = re.search(pattern, line)
    assert found, f"{pattern!r} not in {line!r}"
    return float(found.group(1))


# --- one check per example file --------------------------------------------------------


def check_retrying_client(out: list[str]) -> None:
    assert out == [
        "GET /v1/emails/em_123 -> 202 after 2 retries",
        "delivered to https://hooks.example.com/sent",
        "export: done",
    ]


def check_policies(out: list[str]) -> None:
    assert out[0].startswith("RetryPolicy(attempts=3, base=0.5, cap=20.0, jitter=<Jitter.FULL")
    rows = {line.split(":")[0].strip(): line.split(":")[1].split() for line in out[1:5]}
    assert rows["none"] == ["0.50", "1.00", "2.00", "4.00", "8.00", "8.00"]
    ceilings = [0.5, 1, 2, 4, 8, 8]
    assert all(0 <= float(w) <= c for w, c in zip(rows["full"], ceilings, strict=True))
    assert all(c / 2 <= float(w) <= c for w, c in zip(rows["equal"], ceilings, strict=True))
    assert all(0.5 <= float(w) <= 8 for w in rows["decorrelated"])
    assert out[5:] == [
        "interactive: 5 10.0 3.0",
        "background: 300.0",
        "refused: RetryPolicy.base=5 is above cap=1: base <= cap",
    ]


def check_safe_retries(out: list[str]) -> None:
    assert out == [
        "PUT  -> 200",
        "POST -> 503",
        "POST with a key -> 200",
        "PATCH, key added -> 200",
        "what the API received:",
        "  PUT /v1/templates/welcome key: none",
        "  PUT /v1/templates/welcome key: none",
        "  POST /v1/emails key: none",
        "  POST /v1/batches key: 'batch-42'",
        "  POST /v1/batches key: 'batch-42'",
        "  PATCH /v1/domains/d_1 key: a random UUID",
        "  PATCH /v1/domains/d_1 key: a random UUID",
    ]


def check_retry_after_and_budgets(out: list[str]) -> None:
    assert out[:5] == [
        "Retry-After: '120' -> 120.0",
        "Retry-After: 'Wed, 21 Oct 2015 07:28:00 GMT' -> 10.0",
        "Retry-After: 'soon' -> None",
        "Retry-After: '-3' -> None",
        "RateLimit t -> 30.0",
    ]
    assert out[5].startswith("429 then 200; waited ")
    assert 4.0 <= number_after(r"waited ([\d.]+) s", out[5]) <= 4.4
    assert out[6:] == [
        "outage: 100 calls -> 110 requests (amplification 1.10)",
        "budget refused 95 retries",
    ]


def check_breaker_aware(out: list[str]) -> None:
    for line in out[:3]:
        assert line.startswith("call ")
        assert "refused (provider:api.mail.example is open), retry in about " in line
        assert 26 <= number_after(r"retry in about (\d+) s", line) <= 33
    assert out[3:] == ["requests that reached the provider: 3", "breaker: open"]


def check_tenacity_interop(out: list[str]) -> None:
    waits = [float(w) for w in re.findall(r"[\d.]+", out[0].split("ok")[1])]
    assert out[0].startswith("tenacity with sendguard waits: ok [")
    assert len(waits) == 3
    assert all(1.0 <= w <= 6.0 for w in waits)  # decorrelated in [0.1, 5] plus 1 s fixed
    assert out[1:] == ["gave up after 4 attempts, 6 s", "tenacity with a sendguard policy: ok"]


def check_polling(out: list[str]) -> None:
    times = [number_after(r"t=\s*([\d.]+)s", line) for line in out[:4]]
    assert [line[-3:] for line in out[:4]] == ["202", "503", "202", "200"]
    assert times[0] == 0.0
    assert 5.0 <= times[1] - times[0] <= 5.5  # Retry-After: 5, stretched by <= 10 %
    assert 2.0 <= times[2] - times[1] <= 4.0  # after 2 polls: equal jitter of 4 s
    assert 4.0 <= times[3] - times[2] <= 8.0
    assert out[4] == "report: {'opens': 3, 'clicks': 1}"
    assert out[5].startswith("gave up: ")
    assert out[5].endswith("last {'state': 'running'}")
    assert number_after(r"in (\d+) s", out[5]) < 120
    assert out[6] == "async: done"


def check_testing_mode(out: list[str]) -> None:
    assert out == [
        "test_retries_run_at_once_and_stop_early: passed",
        "test_polls_run_at_once_and_time_out: passed",
    ]


def check_retry_telemetry(out: list[str]) -> None:
    assert out == [
        "event: smtp retries after timeout_error (attempt 1)",
        "event: smtp retries after timeout_error (attempt 2)",
        "event: smtp gave up (attempts) after 3 attempts",
        "event: smtp budget empty, not retrying timeout_error",
        "event: smtp gave up (budget) after 1 attempts",
        "stats: {'calls': 2, 'attempts': 4, 'retries': 2, 'budget_exhausted': 1}",
    ]


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "retrying_client.py": check_retrying_client,
    "policies.py": check_policies,
    "safe_retries.py": check_safe_retries,
    "retry_after_and_budgets.py": check_retry_after_and_budgets,
    "breaker_aware.py": check_breaker_aware,
    "tenacity_interop.py": check_tenacity_interop,
    "polling.py": check_polling,
    "testing_mode.py": check_testing_mode,
    "retry_telemetry.py": check_retry_telemetry,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_and_prints_what_the_doc_says(name):
    CHECKS[name](run_example(name))


# --- the doc and the files agree ----------------------------------------------------------


def test_every_example_file_has_a_check():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_doc_shows_each_example_verbatim_under_its_name(name):
    EXAMPLES_SET.assert_shown_verbatim(name)


def test_every_python_block_in_the_doc_is_an_example_file():
    EXAMPLES_SET.assert_python_blocks_are_files()


def test_the_quick_start_output_in_the_doc_is_what_it_prints():
    doc = DOC.read_text(encoding="utf-8")
    printed = "\n".join(run_example("retrying_client.py"))
    assert f"It prints:\n\n```text\n{printed}\n```" in doc


def test_the_drill_table_in_the_doc_is_current():
    from sendguard.drills import render
    from sendguard.drills.polling_storm import DRILL

    assert f"```text\n{render(DRILL.run(1.0))}\n```" in DOC.read_text(encoding="utf-8")


def test_examples_pass_ruff():
    EXAMPLES_SET.assert_ruff_clean(Path(__file__).relative_to(ROOT))


@pytest.mark.slow
def test_examples_pass_mypy_strict():
    EXAMPLES_SET.assert_mypy_strict()
