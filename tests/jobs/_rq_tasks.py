"""Job functions the RQ and Celery tests enqueue (importable by the worker processes)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class Email:
    """Stands for the incident's ORM object."""

    id: int
    body: str


def send_batch(email_id: Any, recipient_ids: list[Any], **extra: Any) -> dict[str, Any]:
    """A lean job: echoes what it received, so the test sees what crossed the queue."""
    return {"email_id": email_id, "recipients": len(recipient_ids), "extra": extra}


def boom(n: int) -> None:
    """A job that always fails."""
    raise RuntimeError(f"boom {n}")
