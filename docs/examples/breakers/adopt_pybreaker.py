"""Adopting an existing pybreaker breaker: same rules and listeners, sendguard's calling."""

import asyncio
import contextlib

import pybreaker

from sendguard.breakers import BreakerOpen, BreakerRegistry


class PrintingListener(pybreaker.CircuitBreakerListener):
    """A listener the team already had: pybreaker still calls it."""

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        print(f"listener: {old_state.name if old_state else None} -> {new_state.name}")


legacy = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, listeners=[PrintingListener()])
registry = BreakerRegistry()
adopted = registry.adopt("provider:legacy-api", legacy)  # before decorating with its name


@registry.protect("provider:legacy-api")
async def fetch_suppressions(list_id: str) -> list[str]:
    raise ConnectionError("legacy API down")


async def main() -> None:
    for _ in range(2):  # pybreaker's rule: fail_max failures in a row
        with contextlib.suppress(ConnectionError):
            await fetch_suppressions("list-1")
    try:
        await fetch_suppressions("list-1")
    except BreakerOpen as refused:
        print(f"refused: {refused.key}, retry in about {refused.retry_after:.0f} s")


asyncio.run(main())  # pybreaker itself offers only Tornado coroutines (call_async)
print("state:", adopted.state.value, "| pybreaker:", legacy.current_state)
