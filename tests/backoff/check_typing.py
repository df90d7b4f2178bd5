"""Type-level checks of the public backoff API, verified by mypy (the suite runs mypy --strict).

Not collected by pytest: nothing here runs; mypy proves the decorators keep signatures.
"""

from __future__ import annotations

from typing import assert_type

import httpx

from sendguard.backoff import (
    AsyncRetryTransport,
    Retrier,
    RetryPolicy,
    RetryTransport,
    apoll,
    poll,
    retry,
)

retrier = retry(RetryPolicy(attempts=5), on=ConnectionError)
assert_type(retrier, Retrier)


@retrier
def send(message_id: int, *, priority: bool = False) -> str:
    return str(message_id)


@retrier
async def asend(message_id: int) -> bytes:
    return b""


assert_type(send(1, priority=True), str)
assert_type(retrier.call(send, 2), str)


async def check_async() -> None:
    assert_type(await asend(1), bytes)
    assert_type(await retrier.acall(asend, 1), bytes)
    assert_type(await apoll(lambda: asend(2), until=lambda b: b == b"", deadline=5), bytes)


assert_type(poll(lambda: 3, until=lambda n: n > 2, deadline=5), int)
client = httpx.Client(transport=RetryTransport(policy=RetryPolicy(deadline=10)))
aclient = httpx.AsyncClient(transport=AsyncRetryTransport(idempotency_keys=True))
