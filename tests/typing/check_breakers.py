"""Type-level checks of the public breaker API, verified by mypy (see test_typing.py)."""

from __future__ import annotations

from typing import assert_type

from sendguard.breakers import Breaker, BreakerCall, BreakerRegistry, CircuitBreaker, Outcome, State

registry = BreakerRegistry(Breaker.rate(0.5, slow=2.0))
cb = registry.route("GET /v1/emails/{id}/analytics")
assert_type(cb, CircuitBreaker)
assert_type(cb.state, State)


@cb
def send(message_id: int, *, priority: bool = False) -> str:
    return str(message_id)


@cb
async def asend(message_id: int) -> bytes:
    return b""


assert_type(send(1, priority=True), str)


async def check_async() -> None:
    assert_type(await asend(1), bytes)
    assert_type(await cb.acall(asend, 1), bytes)


assert_type(cb.call(send, 3), str)
assert_type(cb.guard(), BreakerCall)


@registry.protect("provider:smtp", fallback=lambda message_id: "queued")
def deliver(message_id: int) -> str:
    return "sent"


assert_type(deliver(2), str)


def classify(status: object) -> Outcome:
    return Outcome.FAILURE if status == 503 else Outcome.SUCCESS


policy: Breaker = Breaker.consecutive(5, classify_result=classify)
