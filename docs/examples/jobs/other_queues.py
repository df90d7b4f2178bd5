"""Any other queue: decorate the function that enqueues, and its arguments are checked first."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sendguard.jobs import PayloadRejected, lean_payloads

outbox: list[str] = []  # stands for a broker


@lean_payloads(queue="emails", function="app.jobs.send_batch")
def publish(email_id: Any, recipient_ids: list[int]) -> None:
    outbox.append(json.dumps([email_id, recipient_ids]))


@lean_payloads(queue="emails", function="app.jobs.send_batch")
async def apublish(email_id: Any, recipient_ids: list[int]) -> None:
    await asyncio.sleep(0)
    outbox.append(json.dumps([email_id, recipient_ids]))


class Email:
    pk = 4242


publish(4242, [1, 2, 3])
asyncio.run(apublish(4242, [4, 5]))
calls: list[Callable[[], None]] = [
    lambda: publish(Email(), [1]),
    lambda: asyncio.run(apublish({"ids": {1, 2}}, [1])),
]
for call in calls:
    try:
        call()
    except PayloadRejected as refused:
        print(f"refused: {refused}")
print("published:", outbox)
