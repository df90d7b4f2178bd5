"""The examples of docs/jobs.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter (as a reader would run it), with warnings as
errors. The doc must show each file verbatim, under its name, so the two cannot drift.
The Redis and Postgres examples run against the test bed's real servers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.docs._examples import Examples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "jobs.md"
EXAMPLES = ROOT / "docs" / "examples" / "jobs"
EXAMPLES_SET = Examples("jobs")
DOC_TEXT = DOC.read_text(encoding="utf-8")


def run_example(name: str, **env: str) -> list[str]:
    """Run one example in a fresh interpreter; return its stdout lines."""
    return EXAMPLES_SET.run(name, **env)


# --- one check per example file --------------------------------------------------------


def check_quickstart(out: list[str]) -> None:
    block = re.search(r"^Output:\n\n```text\n(.*?)```", DOC_TEXT, re.DOTALL | re.MULTILINE)
    assert block is not None
    assert out == block.group(1).splitlines()  # the doc prints the real output


def check_payload_policies(out: list[str]) -> None:
    assert out[:3] == [
        "app.jobs.send on five_minutes: 65536 bytes",
        "app.jobs.hook on webhooks: 8192 bytes",
        "app.reports.weekly on five_minutes: 1048576 bytes",
    ]
    assert out[3].startswith("log: sendguard: app.jobs.send on queue 'five_minutes': payload of")
    assert "over the 16 KiB warning threshold" in out[3]
    assert out[4] == "allow-listed: 75 bytes"
    assert out[5].startswith("refused: batch on queue 'five_minutes': job 65 (app.jobs.send)")
    assert "would be rejected (enforce=False)" in out[6]
    assert out[7] == "dry run let it through: 102418 bytes (a lower bound)"


def check_celery_task(out: list[str]) -> None:
    assert out == [
        "lean: 100",
        "refused app.jobs.send_batch on 'five_minutes': args[0]['body_html'], 5,000,044+ bytes",
    ]


def check_other_queues(out: list[str]) -> None:
    assert out == [
        "refused: app.jobs.send_batch on queue 'emails': args[0] is __main__.Email: pass its pk",
        "refused: app.jobs.send_batch on queue 'emails': args[0]['ids'] is set: pass a sorted list",
        "published: ['[4242, [1, 2, 3]]', '[4242, [4, 5]]']",
    ]


def check_idempotent_sends(out: list[str]) -> None:
    assert out == [
        "m1: provider-m1 | replay: provider-m1",
        "m1 to someone else: PayloadMismatch",
        "m2: Refused | again: provider-m2",
        "m3: TimeoutError | again: OutcomeUnknown",
        "m4 in flight: refused, retry in 60s",
        "for an operator: [('send:m3', 'TimeoutError: connection dropped after DATA'), "
        "('send:m4', 'worker killed after handing the message over')]",
        "m3 after resolve: None | m4: provider-m4",
        "the provider got: ['m1', 'm2', 'm3', 'm4']",
    ]


def check_cron_heartbeats(out: list[str]) -> None:
    assert out == [
        "send-scheduled: failing last run failed (1 in a row): ConnectionError: SMTP relay refused",
        "check-backlog: ok",
        "nightly-digest: ok",
        "+1 min: late, probe warn",
        "+2 min: stalled, probe fail",
        "+3 min: stalled, probe fail",
    ]


def check_telemetry(out: list[str]) -> None:
    events = [line for line in out if line.startswith("event ")]
    assert events == [
        "event sendguard.jobs.payload.rejections {'queue': 'five_minutes', 'function': "
        "'app.jobs.send', 'violation': 'type', 'enforced': True}",
        "event sendguard.jobs.ledger.decisions {'ledger': 'sends', 'decision': 'started'}",
        "event sendguard.jobs.ledger.transitions {'ledger': 'sends', 'from_state': "
        "'in_progress', 'to_state': 'completed'}",
        "event sendguard.jobs.ledger.decisions {'ledger': 'sends', 'decision': 'replayed'}",
        "event sendguard.jobs.heartbeats {'job': 'digest', 'outcome': 'started'}",
        "event sendguard.jobs.heartbeats {'job': 'digest', 'outcome': 'succeeded'}",
    ]
    assert "sizes: {('five_minutes', 'app.jobs.send'): {'checked': 1, 'bytes': 23" in out[1]


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "quickstart.py": check_quickstart,
    "payload_policies.py": check_payload_policies,
    "celery_task.py": check_celery_task,
    "other_queues.py": check_other_queues,
    "idempotent_sends.py": check_idempotent_sends,
    "cron_heartbeats.py": check_cron_heartbeats,
    "telemetry.py": check_telemetry,
}
SERVER_EXAMPLES = {"rq_queue.py", "backlog.py", "shared_ledger.py"}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_on_embedded_defaults(name):
    CHECKS[name](run_example(name))


def assert_tidy(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        assert client.keys("rq:*") == []  # the example tidies up after itself
    finally:
        client.close()


@pytest.mark.redis
def test_rq_example_checks_every_path_against_a_real_redis(redis_url):
    out = run_example("rq_queue.py", REDIS_URL=redis_url)
    assert out == [
        "enqueue: refused at args[0]['body_html'] (size)",
        "enqueue_at: refused at args[0]['body_html'] (size)",
        "enqueue_in: refused at args[0]['body_html'] (size)",
        "enqueue_many: refused at args[0]['body_html'] (size)",
        "lean fan-out: 300 jobs, 300 queued",
        "sendguard's JSON serializer: True",
    ]
    assert_tidy(redis_url)


@pytest.mark.redis
def test_backlog_example_against_a_real_redis(redis_url):
    out = run_example("backlog.py", REDIS_URL=redis_url)
    assert out[0] == "five_minutes queued: 50 jobs, 2 kB"
    assert re.fullmatch(r"five_minutes scheduled: 30 jobs, 6,0\d\d kB", out[1])
    assert re.fullmatch(r"top function: app\.jobs\.send_email_to, 30 jobs, 6,0\d\d kB", out[2])
    assert out[3:] == [
        "dry run: 30 would go, 30 still scheduled",
        "purged: 30 jobs, 0 still scheduled",
    ]
    assert_tidy(redis_url)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.parametrize("store", ["redis", "postgres"])
def test_shared_ledger_example_on_both_stores(store, request):
    url = request.getfixturevalue("redis_url" if store == "redis" else "postgres_dsn")
    out = run_example("shared_ledger.py", SENDGUARD_LEDGER_STORE=url)
    assert out == [
        "b while a sends: refused, retry in about 60s",
        "b after a finished: provider-m1",
        "sent: ['m1 by a']",
        f'entry: completed 1 "provider-m1" {store}',
    ]


# --- the doc and the files agree ----------------------------------------------------------


def test_every_example_file_has_a_check():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CHECKS) | SERVER_EXAMPLES


@pytest.mark.parametrize("name", sorted({*CHECKS, *SERVER_EXAMPLES}))
def test_the_doc_shows_each_example_verbatim_under_its_name(name):
    EXAMPLES_SET.assert_shown_verbatim(name)


def test_every_python_block_in_the_doc_is_an_example_file():
    EXAMPLES_SET.assert_python_blocks_are_files()


def test_the_doc_shows_the_drill_tables_as_they_run():
    from sendguard.drills import cron_stall, fat_jobs, render, replay_duplicates

    for module in (fat_jobs, replay_duplicates, cron_stall):
        assert render(module.DRILL.run(1.0)) in DOC_TEXT


def test_examples_pass_ruff_and_mypy_strict():
    EXAMPLES_SET.assert_ruff_clean(Path(__file__).relative_to(ROOT))
    EXAMPLES_SET.assert_mypy_strict()
