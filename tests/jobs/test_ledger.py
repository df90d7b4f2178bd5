"""`Ledger` and `idempotent`: decorator and context manager, outcomes, telemetry, store outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from sendguard import ConfigError, Event, StoreUnavailable
from sendguard.jobs import (
    AlreadyInProgress,
    EntryState,
    Ledger,
    LedgerDecision,
    LedgerPolicy,
    LedgerTransition,
    MemoryLedgerStore,
    OutcomeUnknown,
    PayloadMismatch,
    ResultNotRecorded,
    default_ledger,
    idempotent,
)
from sendguard.testing import FakeClock

from .conftest import STORES, make_store


@pytest.fixture(params=STORES)
def ledger(request) -> Iterator[Ledger]:
    clock = FakeClock()
    store = make_store(request.param, request, clock)
    name = f"l{abs(hash(request.node.nodeid))}"
    led = Ledger(store, name=name, policy=LedgerPolicy(lease=30.0), clock=clock, hooks=[])
    yield led
    led.close()


class Provider:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to: str, subject: str) -> str:
        self.sent.append(to)
        return f"msg-{len(self.sent)}"


def test_a_decorated_send_runs_once_per_key_and_replays_its_result(ledger: Ledger):
    provider = Provider()

    @ledger.idempotent(key="send:{message_id}")
    def send(message_id: str, to: str, subject: str = "hi") -> str:
        return provider.send(to, subject)

    assert send("m1", "a@example.com") == "msg-1"
    assert send("m1", "a@example.com") == "msg-1"  # a replay: not sent again
    assert send("m2", "b@example.com") == "msg-2"
    assert provider.sent == ["a@example.com", "b@example.com"]
    entry = ledger.get("send:m1")
    assert entry is not None
    assert (entry.state, entry.result, entry.attempts) == (EntryState.COMPLETED, '"msg-1"', 1)
    assert entry.result_digest


def test_the_same_key_with_other_arguments_is_an_error(ledger: Ledger):
    @ledger.idempotent(key="send:{message_id}")
    def send(message_id: str, to: str) -> str:
        return to

    send("m1", "a@example.com")
    with pytest.raises(PayloadMismatch) as mismatch:
        send("m1", "b@example.com")
    assert mismatch.value.key == "send:m1"


def test_a_payload_function_picks_what_identifies_a_call(ledger: Ledger):
    calls: list[int] = []

    @ledger.idempotent(
        key=lambda message_id, attempt: f"m:{message_id}",
        payload=lambda message_id, attempt: {"id": message_id},
    )
    def send(message_id: str, attempt: int) -> int:
        calls.append(attempt)
        return attempt

    assert send("x", 1) == 1
    assert send("x", 2) == 1  # attempt is not part of the payload: a replay
    assert calls == [1]


def test_async_functions_are_guarded_the_same_way(ledger: Ledger):
    provider = Provider()

    @ledger.idempotent(key="send:{message_id}")
    async def send(message_id: str, to: str) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"id": provider.send(to, "s")}

    async def twice() -> list[dict[str, str]]:
        return [await send("m1", "a@x"), await send("m1", "a@x")]

    assert asyncio.run(twice()) == [{"id": "msg-1"}, {"id": "msg-1"}]
    assert provider.sent == ["a@x"]


def test_outcomes_follow_how_the_body_ended(ledger: Ledger):
    @ledger.idempotent(key="k:{n}", payload=lambda n, error: n)
    def send(n: int, error: BaseException | None) -> int:
        if error is not None:
            raise error
        return n

    with pytest.raises(ValueError, match="refused"):
        send(1, ValueError("550 refused"))
    with pytest.raises(TimeoutError):
        send(2, TimeoutError("after DATA"))
    with pytest.raises(KeyboardInterrupt):
        send(3, KeyboardInterrupt())
    states = {n: ledger.get(f"k:{n}").state for n in (1, 2, 3)}  # type: ignore[union-attr]
    assert states == {1: EntryState.FAILED, 2: EntryState.UNKNOWN, 3: EntryState.UNKNOWN}
    assert ledger.get("k:1").detail == "ValueError: 550 refused"  # type: ignore[union-attr]
    assert send(1, None) == 1  # failed: the next call runs
    with pytest.raises(OutcomeUnknown) as unknown:
        send(2, None)  # unknown: never run again automatically
    assert "TimeoutError: after DATA" in str(unknown.value)
    assert [e.key for e in ledger.unknowns()] == ["k:2", "k:3"]


def test_the_context_manager_reports_what_the_block_says(ledger: Ledger):
    provider = Provider()
    for _ in range(2):
        with ledger.idempotent("send:42", payload={"to": "a@x"}) as call:
            if not call.replayed:
                call.complete(provider.send("a@x", "s"))
        assert call.result == "msg-1"
    assert provider.sent == ["a@x"]
    with ledger.idempotent("send:43", payload={"to": "b@x"}) as call:
        call.unknown("connection dropped after DATA")
    assert ledger.get("send:43").state is EntryState.UNKNOWN  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), ledger.idempotent("send:42", payload={"to": "a@x"}) as again:
        again.complete("resent")  # acting on a replayed key is a bug, refused loudly
    with pytest.raises(ConfigError), ledger.idempotent(lambda: "k"):  # only on a decorator
        pass


def test_an_async_context_manager_and_a_lease_renewal(ledger: Ledger):
    clock = ledger.clock
    assert isinstance(clock, FakeClock)

    async def main() -> str:
        async with ledger.idempotent("long:1", payload=None) as call:
            clock.advance(25)
            assert call.renew()
            clock.advance(25)  # 50 s in, but the lease was renewed at 25 s
            with pytest.raises(AlreadyInProgress) as busy:
                async with ledger.idempotent("long:1", payload=None):
                    pass
            assert 0 < busy.value.retry_after <= 30
            call.complete("done")
        return str(call.result)

    assert asyncio.run(main()) == "done"


def test_a_result_that_is_not_json_is_kept_as_a_digest_only(ledger: Ledger):
    @ledger.idempotent(key="obj:{n}")
    def build(n: int) -> object:
        return object()

    first = build(1)
    assert first is not None
    with pytest.raises(ResultNotRecorded):
        build(1)
    assert ledger.get("obj:1").state is EntryState.COMPLETED  # type: ignore[union-attr]


def test_an_operator_resolves_an_unknown(ledger: Ledger):
    with ledger.idempotent("send:1", payload=1) as call:
        call.unknown("dropped")
    entry = ledger.resolve("send:1", completed=False, note="not in the provider log")
    assert entry.state is EntryState.FAILED
    assert entry.detail == "resolved by operator: not in the provider log"
    with pytest.raises(ConfigError, match="not unknown"):
        ledger.resolve("send:1", completed=True, note="again")
    with ledger.idempotent("send:1", payload=1) as call:
        assert not call.replayed  # resolved as not sent: it runs again


def test_arguments_that_are_not_json_need_a_payload_function(ledger: Ledger):
    @ledger.idempotent(key="k")
    def send(conn: object) -> None:
        return None

    with pytest.raises(ConfigError, match="payload="):
        send(object())


def test_telemetry_reports_decisions_and_transitions():
    events: list[Event] = []
    led = Ledger(name="sends", hooks=[events.append])
    with led.idempotent("k", payload=1) as call:
        call.complete(7)
    with led.idempotent("k", payload=1):
        pass
    kinds = [
        (type(e).__name__, getattr(e, "decision", getattr(e, "to_state", None))) for e in events
    ]
    assert kinds == [
        ("LedgerDecision", "started"),
        ("LedgerTransition", "completed"),
        ("LedgerDecision", "replayed"),
    ]
    assert isinstance(events[0], LedgerDecision)
    assert isinstance(events[1], LedgerTransition)
    assert events[0].attributes == ("ledger", "decision")


def test_the_module_level_idempotent_uses_the_default_ledger():
    calls: list[int] = []

    @idempotent(key="default:{n}")
    def once(n: int) -> int:
        calls.append(n)
        return n

    assert once(1) == once(1) == 1
    assert calls == [1]
    assert default_ledger() is default_ledger()
    assert isinstance(default_ledger().store, MemoryLedgerStore)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"lease": 0}, ["lease", "0"]),
        ({"retention": float("inf")}, ["retention", "inf"]),
        ({"retry_abandoned": 1}, ["retry_abandoned", "1"]),
        ({"on_store_down": "maybe"}, ["on_store_down", "'maybe'"]),
        ({"unknown_on": (int,)}, ["unknown_on", "int"]),
        ({"max_result_bytes": -1}, ["max_result_bytes", "-1"]),
    ],
)
def test_bad_ledger_policies_fail_when_built_naming_the_field(changes, names):
    with pytest.raises(ConfigError) as bad:
        LedgerPolicy(**changes)
    assert all(name in str(bad.value) for name in names)


def test_bad_ledger_configuration_fails_at_once():
    with pytest.raises(ConfigError, match="name"):
        Ledger(name="")
    with pytest.raises(ConfigError, match="policy"):
        Ledger(policy={"lease": 5})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown ledger store"):
        Ledger("mysql://x")
    assert LedgerPolicy().copy(lease=5.0).lease == 5.0


# --- the store going away --------------------------------------------------------------


def test_a_store_outage_refuses_fast_by_default_and_never_runs_twice(restartable_redis):
    from sendguard.jobs.redis_store import RedisLedgerStore

    calls: list[int] = []
    events: list[Event] = []
    led = Ledger(
        RedisLedgerStore(restartable_redis.url, timeout=0.2), name="down", hooks=[events.append]
    )

    @led.idempotent(key="send:{n}")
    def send(n: int) -> int:
        calls.append(n)
        return n

    assert send(1) == 1
    restartable_redis.stop(cleanup=False)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        send(2)
    with pytest.raises(StoreUnavailable):
        send(3)  # the store is backing off: refused without waiting on a socket
    assert time.monotonic() - started < 2.0
    assert calls == [1]
    assert "store_down" in [getattr(e, "decision", "") for e in events]
    assert any(e.kind == "sendguard.store.unavailable" for e in events)
    led.close()


def test_run_direction_runs_unguarded_when_the_store_is_down(restartable_redis):
    from sendguard.jobs.redis_store import RedisLedgerStore

    led = Ledger(
        RedisLedgerStore(restartable_redis.url, timeout=0.2),
        name="down",
        policy=LedgerPolicy(on_store_down="run"),
        hooks=[],
    )
    restartable_redis.stop(cleanup=False)
    with led.idempotent("k", payload=1) as call:
        assert not call.guarded
        call.complete("sent anyway")
    assert call.result == "sent anyway"
    led.close()


def test_an_outcome_that_cannot_be_recorded_turns_unknown_when_the_lease_ends(
    redis_url, redis_client
):
    from sendguard.jobs.redis_store import RedisLedgerStore

    clock = FakeClock()
    store = RedisLedgerStore(redis_url, time_ms=lambda: round(clock.wall() * 1000))
    led = Ledger(store, name="lost", policy=LedgerPolicy(lease=30.0), clock=clock, hooks=[])
    try:
        with led.idempotent("send:1", payload=1) as call:
            # The send went out; then Redis refuses every write (out of memory).
            redis_client.config_set("maxmemory", "1")
            call.complete("msg-1")
    finally:
        redis_client.config_set("maxmemory", "0")
    assert call.result == "msg-1"  # the caller still gets its result
    entry = led.get("send:1")
    assert entry is not None
    assert entry.state is EntryState.IN_PROGRESS  # not recorded as completed
    clock.advance(31)
    assert [e.key for e in led.unknowns()] == ["send:1"]  # in doubt: listed, never resent
    led.close()
