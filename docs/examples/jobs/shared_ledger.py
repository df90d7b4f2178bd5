"""Two workers share a ledger through Redis or Postgres (run against a scratch store).

    SENDGUARD_LEDGER_STORE=redis://localhost:6379/0 python docs/examples/jobs/shared_ledger.py
    SENDGUARD_LEDGER_STORE=postgresql://localhost/app python docs/examples/jobs/shared_ledger.py

For Postgres, `migrate` creates the table first (run it from a deploy step).
"""

import os
import uuid

from sendguard.jobs import AlreadyInProgress, Ledger, open_ledger_store

URL = os.environ.get("SENDGUARD_LEDGER_STORE", "redis://localhost:6379/0")
if URL.startswith("postgres"):
    from sendguard.jobs.postgres_store import migrate

    migrate(URL)
name = f"example-{uuid.uuid4().hex[:8]}"  # a ledger of its own in the scratch store
worker_a = Ledger(open_ledger_store(URL, timeout=2.0), name=name)
worker_b = Ledger(open_ledger_store(URL, timeout=2.0), name=name)
sent: list[str] = []


def sender(ledger: Ledger, who: str) -> str:
    @ledger.idempotent(key="send:{message_id}")
    def send(message_id: str) -> str:
        sent.append(f"{message_id} by {who}")
        return f"provider-{message_id}"

    return send("m1")


with worker_a.idempotent("send:m1", payload={"message_id": "m1"}) as call:  # a is sending
    try:
        sender(worker_b, "b")
    except AlreadyInProgress as busy:
        print(f"b while a sends: refused, retry in about {busy.retry_after:.0f}s")
    sent.append("m1 by a")
    call.complete("provider-m1")
print("b after a finished:", sender(worker_b, "b"))
print("sent:", sent)
entry = worker_b.get("send:m1")
assert entry is not None
print("entry:", entry.state.value, entry.attempts, entry.result, worker_b.store.label)
worker_a.close()
worker_b.close()
