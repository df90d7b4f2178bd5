"""A Celery app on the Redis broker whose tasks use `LeanTask` (the worker imports this)."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery  # type: ignore[import-untyped]

from sendguard.jobs.celery import LeanTask

BROKER = os.environ.get("SENDGUARD_TEST_BROKER", "redis://127.0.0.1:6379/0")

app = Celery("sendguard_tests", broker=BROKER, backend=BROKER, task_cls=LeanTask)
app.conf.update(
    task_default_queue="lean",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)


@app.task(name="tests.send_batch")  # type: ignore[untyped-decorator]
def send_batch(email_id: Any, recipient_ids: list[Any]) -> dict[str, Any]:
    """A lean task: echoes what it got."""
    return {"email_id": email_id, "recipients": len(recipient_ids)}


@app.task(name="tests.flaky", bind=True, max_retries=1, default_retry_delay=0)  # type: ignore[untyped-decorator]
def flaky(self: Any, n: int) -> str:
    """Fails once, then succeeds on its retry (which publishes through apply_async)."""
    if self.request.retries == 0:
        raise self.retry(args=(n + 1,))
    return f"retried with {n}"
