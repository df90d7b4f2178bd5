"""Fallbacks: once the primary provider's breaker is open, send through the secondary."""

import asyncio

from sendguard.breakers import Breaker, BreakerRegistry

registry = BreakerRegistry(Breaker.consecutive(3))
primary_up = False


@registry.protect("provider:secondary")
def via_secondary(message_id: str) -> str:
    return f"{message_id}: sent via secondary"


@registry.protect("provider:primary", fallback=via_secondary)
def send(message_id: str) -> str:
    if not primary_up:
        raise ConnectionError("primary SMTP server is down")
    return f"{message_id}: sent via primary"


for n in range(1, 6):
    try:
        print(send(f"msg-{n}"))
    except ConnectionError as error:
        # The call ran and failed: whether it went out is for the ledger to say.
        print(f"msg-{n}: failed ({error}), left for retry")


# The fallback of a coroutine function may be a plain or a coroutine function.
async def queue_for_later(message_id: str) -> str:
    return f"{message_id}: queued until the API recovers"


@registry.protect("provider:http-api", fallback=queue_for_later)
async def send_async(message_id: str) -> str:
    raise TimeoutError("API timed out")


async def main() -> None:
    for n in range(1, 5):
        try:
            print(await send_async(f"api-{n}"))
        except TimeoutError:
            print(f"api-{n}: failed (timed out)")


asyncio.run(main())
