"""Quick start: one registry, a policy, a decorator (sync and async) and a context manager."""

import asyncio

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry, Outcome


def by_status(status: object) -> Outcome:
    """An HTTP status code: a 5xx means the dependency is failing."""
    return Outcome.FAILURE if isinstance(status, int) and status >= 500 else Outcome.SUCCESS


breakers = BreakerRegistry(
    # Every breaker: trip when half the calls fail or take 2 s or more.
    Breaker.rate(0.5, slow=2.0),
    # Outbound providers: trip after 3 failures in a row; judge HTTP answers by status.
    policies={"provider:*": Breaker.consecutive(3, classify_result=by_status)},
)


@breakers.protect("provider:smtp-primary")
def send(to: str) -> str:
    raise ConnectionError(f"smtp-primary refused the connection for {to}")


@breakers.protect("route:GET /v1/emails/{id}/analytics")
async def analytics(email_id: str) -> dict[str, int]:
    return {"opens": 3, "clicks": 1}


def post_webhook(url: str) -> int:
    return 503  # the receiving end is down


# 1. A decorated sync function: three failures trip the breaker, the fourth call is refused.
for to in ("a@example.com", "b@example.com", "c@example.com"):
    try:
        send(to)
    except ConnectionError as error:
        print(f"failed: {error}")
try:
    send("d@example.com")
except BreakerOpen as refused:
    print(f"refused: {refused.key} is {refused.reason}, retry in about {refused.retry_after:.0f} s")

# 2. A decorated coroutine function: awaited as usual.
print("analytics:", asyncio.run(analytics("em_123")))

# 3. A context manager: the block reports what it got back with call.result(...).
webhooks = breakers.provider("webhooks")
for _ in range(3):
    with webhooks.guard() as call:
        status = post_webhook("https://hooks.example.com/sent")
        call.result(status)  # 503 -> Outcome.FAILURE, through by_status
print("webhooks breaker:", webhooks.state.value)
