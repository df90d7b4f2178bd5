"""Several processes racing on one key through a shared store: exactly one executes."""

from __future__ import annotations

import multiprocessing

import pytest

from tests.jobs._race import race

PROCESSES = 5


def _run(store_url: str, table: str | None) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, report, release = ctx.Barrier(PROCESSES), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=race, args=(store_url, table, barrier, report, release))
        for _ in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    try:
        first = [report.get(timeout=60) for _ in range(PROCESSES)]  # decisions, all in
        release.set()
        last = report.get(timeout=60)  # the executor's result
    finally:
        release.set()
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return sorted([*first, last])


@pytest.mark.redis
def test_processes_racing_through_redis_execute_once(redis_url):
    outcomes = _run(redis_url, None)
    assert outcomes == ["done msg-1", "executing", *["refused"] * (PROCESSES - 1)]


@pytest.mark.postgres
def test_processes_racing_through_postgres_execute_once(postgres_dsn, ledger_table):
    outcomes = _run(postgres_dsn, ledger_table)
    assert outcomes == ["done msg-1", "executing", *["refused"] * (PROCESSES - 1)]
