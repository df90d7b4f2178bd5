"""The asyncio path against real Redis: no blocking client calls, same shared semantics."""

from __future__ import annotations

import asyncio

import pytest

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry, State
from sendguard.breakers.redis_store import RedisBreakerStore
from sendguard.testing import FakeClock


class Down(Exception):
    pass


def test_async_breakers_trip_probe_and_close_through_redis(redis_url):
    clock = FakeClock()

    async def main() -> None:
        store = RedisBreakerStore(redis_url, time_ms=lambda: round(clock.monotonic() * 1000))
        policy = Breaker.consecutive(2, open_for=5, open_jitter=0, half_open_calls=2)
        one = BreakerRegistry(policy, store=store, clock=clock).provider("smtp")
        two = BreakerRegistry(policy, store=store, clock=clock).provider("smtp")

        @one
        async def send_one(fail: bool) -> str:
            await asyncio.sleep(0)
            if fail:
                raise Down
            return "sent"

        for _ in range(2):
            with pytest.raises(Down):
                await send_one(True)
        assert one.state is State.OPEN
        clock.advance(1)  # past `two`'s refresh interval: it reads the shared state
        with pytest.raises(BreakerOpen):
            await two.acall(send_one, False)
        assert two.state is State.OPEN

        clock.advance(5)
        assert await two.acall(send_one, False) == "sent"  # probe 1 (through `two`)
        assert await send_one(False) == "sent"  # probe 2 (through `one`): closes it
        clock.advance(1)
        await two.acall(send_one, False)
        assert one.state is State.CLOSED
        assert two.state is State.CLOSED
        await store.aclose()

    asyncio.run(main())


def test_async_calls_fall_back_when_redis_is_unreachable():
    from sendguard.testing.servers import free_port

    async def main() -> list[str]:
        store = RedisBreakerStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.05)
        events: list[object] = []
        breaker = BreakerRegistry(Breaker(), store=store, hooks=[events.append]).get("x")

        async def ok() -> str:
            return "served"

        results = [await breaker.acall(ok) for _ in range(50)]
        assert not breaker.shared
        assert [type(e).__name__ for e in events] == ["StoreUnavailableEvent"]
        await store.aclose()
        return results

    assert asyncio.run(main()) == ["served"] * 50
