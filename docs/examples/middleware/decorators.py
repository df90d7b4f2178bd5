"""Decorators: the same route policies on plain functions, sync and async."""

import asyncio
from dataclasses import dataclass

from sendguard import (
    Breaker,
    BreakerOpen,
    Bulkhead,
    BulkheadFull,
    Guard,
    RateLimited,
    RoutePolicy,
)
from sendguard.testing import FakeClock

guard = Guard(
    routes={
        "POST /v1/emails": RoutePolicy(limits="2/minute"),
        "GET /v1/emails/{id}/analytics": RoutePolicy(bulkhead=Bulkhead(1)),
        "POST /v1/webhooks": RoutePolicy(breaker=Breaker.consecutive(2, open_jitter=0)),
    },
    clock=FakeClock(start=0.0),  # fake time, so the printed times are exact
)


@guard.route("POST /v1/emails", key=lambda account, to: account)  # limits count per account
def send_email(account: str, to: str) -> str:
    return f"queued for {to}"


@guard.route("GET /v1/emails/{id}/analytics")  # no key: one budget shared by all callers
async def analytics(email_id: str) -> dict[str, int]:
    await asyncio.sleep(0.05)
    return {"opens": 3}


@dataclass
class Reply:
    status_code: int  # a returned object's status_code feeds the route's breaker


@guard.route("POST /v1/webhooks")
def deliver_webhook(url: str) -> Reply:
    return Reply(502)  # the receiver is down


for to in ("a@example.com", "b@example.com", "c@example.com"):
    try:
        print(send_email("acct_acme", to))
    except RateLimited as refused:
        print(f"refused: {type(refused).__name__}, retry_after={refused.retry_after:g} s")
print(send_email("acct_globex", "d@example.com"))  # another account, its own budget


async def two_at_once() -> None:
    results = await asyncio.gather(analytics("em_1"), analytics("em_2"), return_exceptions=True)
    for result in results:
        if isinstance(result, BulkheadFull):
            print(f"refused: BulkheadFull, retry_after={result.retry_after:g} s")
        else:
            print("analytics:", result)


asyncio.run(two_at_once())

print("webhooks:", [deliver_webhook("https://hooks.example.com").status_code for _ in range(2)])
try:
    deliver_webhook("https://hooks.example.com")
except BreakerOpen as refused:
    print(f"refused: BreakerOpen ({refused.reason}), retry_after={refused.retry_after:g} s")
