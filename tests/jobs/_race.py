"""A worker process for the race test: waits at a barrier, then sends through the ledger."""

from __future__ import annotations

from typing import Any

from sendguard.jobs import AlreadyInProgress, Ledger, open_ledger_store


def race(store_url: str, table: str | None, barrier: Any, report: Any, release: Any) -> None:
    """Call the guarded send once; report whether this process executed it or was refused."""
    if table is None:
        store = open_ledger_store(store_url, timeout=5.0)
    else:
        from sendguard.jobs.postgres_store import PostgresLedgerStore

        store = PostgresLedgerStore(store_url, table=table)
    ledger = Ledger(store, name="race", hooks=[])

    @ledger.idempotent(key="send:{message_id}")
    def send(message_id: str) -> str:
        report.put("executing")
        release.wait(30)  # hold the key until every other process has been refused
        return "msg-1"

    barrier.wait(30)
    try:
        report.put(f"done {send('m-1')}")
    except AlreadyInProgress:
        report.put("refused")
    finally:
        ledger.close()
