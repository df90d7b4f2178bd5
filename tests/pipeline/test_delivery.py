"""`Deliverer` over real aiosmtpd sinks: ledger, retries, breakers, failover, pacing."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from sendguard import ConfigError
from sendguard.backoff import Budgets, Jitter, RetryBudget, RetryPolicy
from sendguard.breakers import Breaker, BreakerRegistry, State
from sendguard.jobs import EntryState, Ledger
from sendguard.pipeline.delivery import Deliverer, DeliveryResult, OutboundMessage, Outcome
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.sinks import SinkServer
from sendguard.ratelimit import Pacer
from sendguard.testing import FakeClock
from tests.pipeline._mail import SENDER, message, provider_for


@pytest.fixture
def sinks() -> Iterator[tuple[SinkServer, SinkServer]]:
    with SinkServer("primary", hang_seconds=5) as a, SinkServer("secondary", hang_seconds=5) as b:
        yield a, b


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def build(clock: FakeClock) -> Iterator[Callable[..., Deliverer]]:
    """Makes Deliverers over the given sinks (a memory ledger on `clock` unless given);
    closes them after the test."""
    made: list[Deliverer] = []

    def make(
        sinks: tuple[SinkServer, ...],
        *,
        ledger: Ledger | None = None,
        breakers: BreakerRegistry | None = None,
        retry: RetryPolicy | None = None,
        budget: Budgets | None = None,
        pacer: Pacer | None = None,
        timeout: float = 2.0,
    ) -> Deliverer:
        deliverer = Deliverer(
            [provider_for(sink, timeout=timeout) for sink in sinks],
            ledger=ledger or Ledger(name="sends", clock=clock),
            breakers=breakers,
            pacer=pacer,
            retry=retry or RetryPolicy(attempts=3, base=0.5, cap=5),
            budget=budget,
            clock=clock,
        )
        made.append(deliverer)
        return deliverer

    yield make
    for deliverer in made:
        deliverer.close()
        deliverer.ledger.close()


def recipient_where(plan: FaultPlan, *faults: Fault) -> str:
    """A recipient whose first attempts at a sink with `plan` draw `faults`, in order."""
    for i in range(10_000):
        address = f"r{i}@example.com"
        if all(plan.fault_for(address, n) is f for n, f in enumerate(faults)):
            return address
    raise AssertionError(f"no recipient draws {faults}")


def test_sent_once_then_a_duplicate(sinks, clock, build):
    primary, secondary = sinks
    deliverer = build(sinks)
    first = deliverer.deliver(message("send:1:1"))
    assert first == DeliveryResult("send:1:1", Outcome.SENT, "primary", 1, "sent")
    again = deliverer.deliver(message("send:1:1"))
    assert (again.outcome, again.provider, again.attempts) == (Outcome.DUPLICATE, "primary", 0)
    assert primary.counts_by_key() == Counter({"send:1:1": 1})
    assert secondary.received() == []
    entry = deliverer.ledger.get("send:1:1")
    assert entry is not None and entry.state is EntryState.COMPLETED
    assert json.loads(entry.result or "null")["outcome"] == "sent"
    assert deliverer.stats() == {
        "sent": 1,
        "rejected": 0,
        "unknown": 0,
        "deferred": 0,
        "duplicate": 1,
        "attempts": 1,
    }


def test_a_5xx_is_rejected_at_once_and_never_retried(sinks, clock, build):
    primary, secondary = sinks
    primary.faults = FaultPlan({Fault.PERMANENT: 1.0})
    breakers = BreakerRegistry(Breaker.consecutive(3), clock=clock)
    deliverer = build(sinks, breakers=breakers)
    results = [deliverer.deliver(message(f"send:1:{i}")) for i in range(5)]
    assert {(r.outcome, r.provider, r.attempts) for r in results} == {
        (Outcome.REJECTED, "primary", 1)
    }
    assert "550" in results[0].detail
    assert secondary.received() == []  # a rejection is about the message: no failover
    assert breakers.provider("primary").state is State.CLOSED  # the relay works
    entry = deliverer.ledger.get("send:1:0")
    assert entry is not None and entry.state is EntryState.COMPLETED
    assert json.loads(entry.result or "null")["outcome"] == "rejected"
    assert deliverer.deliver(message("send:1:0")).outcome is Outcome.DUPLICATE
    assert primary.connections() == 1


def test_a_4xx_is_retried_after_a_backoff_then_sent(sinks, clock, build):
    primary, secondary = sinks
    plan = FaultPlan({Fault.TRANSIENT: 0.5}, seed=5)
    primary.faults = plan
    recipient = recipient_where(plan, Fault.TRANSIENT, Fault.NONE)
    deliverer = build(sinks, retry=RetryPolicy(attempts=3, base=2, cap=2, jitter=Jitter.NONE))
    before = clock.monotonic()
    result = deliverer.deliver(message("send:1:1", recipient))
    assert (result.outcome, result.provider, result.attempts) == (Outcome.SENT, "primary", 2)
    assert clock.monotonic() - before == pytest.approx(2.0)  # one backoff, on the clock
    assert primary.counts_by_key() == Counter({"send:1:1": 1})
    assert secondary.received() == []


def test_transient_errors_past_the_retries_fail_over(sinks, clock, build):
    primary, secondary = sinks
    primary.faults = FaultPlan({Fault.TRANSIENT: 1.0})
    deliverer = build(sinks)
    result = deliverer.deliver(message("send:1:1"))
    assert (result.outcome, result.provider, result.attempts) == (Outcome.SENT, "secondary", 4)
    assert primary.received() == [] and len(secondary.received()) == 1


def test_an_empty_budget_defers_and_a_later_job_sends_it(sinks, clock, build):
    (primary, _) = sinks
    primary.faults = FaultPlan({Fault.TRANSIENT: 1.0})
    budget = Budgets(RetryBudget(capacity=2, ratio=0.1, per="client"))
    deliverer = build(sinks[:1], retry=RetryPolicy(attempts=10), budget=budget)
    first = deliverer.deliver(message("send:1:1"))
    assert (first.outcome, first.attempts) == (Outcome.DEFERRED, 3)  # 1 + 2 paid retries
    second = deliverer.deliver(message("send:1:2"))
    assert (second.outcome, second.attempts) == (Outcome.DEFERRED, 1)  # nothing left to pay
    assert "451" in second.detail and second.provider is None
    entry = deliverer.ledger.get("send:1:2")
    assert entry is not None and entry.state is EntryState.FAILED  # known not sent
    primary.faults = FaultPlan()
    later = deliverer.deliver(message("send:1:2"))
    assert (later.outcome, later.provider) == (Outcome.SENT, "primary")
    assert primary.counts_by_key() == Counter({"send:1:2": 1})


@pytest.mark.parametrize("fault", [Fault.DROP_AFTER_DATA, Fault.HANG])
def test_silence_after_the_body_is_unknown_and_never_resent(sinks, clock, build, fault):
    primary, secondary = sinks
    primary.faults = FaultPlan({fault: 1.0})
    deliverer = build(sinks, timeout=0.3)
    result = deliverer.deliver(message("send:1:1"))
    assert (result.outcome, result.provider, result.attempts) == (Outcome.UNKNOWN, "primary", 1)
    assert secondary.received() == []  # no failover: it may have been delivered
    stored = 1 if fault is Fault.DROP_AFTER_DATA else 0
    assert primary.counts_by_key()["send:1:1"] == stored
    assert [entry.key for entry in deliverer.ledger.unknowns()] == ["send:1:1"]
    primary.faults = FaultPlan()
    again = deliverer.deliver(message("send:1:1"))
    assert again.outcome is Outcome.DUPLICATE and "operator" in again.detail
    assert primary.counts_by_key()["send:1:1"] == stored


def test_a_primary_that_is_down_fails_over_and_its_breaker_opens(sinks, clock, build):
    primary, secondary = sinks
    primary.faults.down = True
    breakers = BreakerRegistry(Breaker.consecutive(3), clock=clock)
    deliverer = build(sinks, breakers=breakers, retry=RetryPolicy(attempts=2))
    first = deliverer.deliver(message("send:1:1"))
    assert (first.outcome, first.provider, first.attempts) == (Outcome.SENT, "secondary", 3)
    second = deliverer.deliver(message("send:1:2"))  # the third failure trips the breaker
    assert (second.outcome, second.provider) == (Outcome.SENT, "secondary")
    assert breakers.provider("primary").state is State.OPEN
    knocks = primary.connections()
    later = [deliverer.deliver(message(f"send:2:{i}")) for i in range(10)]
    assert {(r.outcome, r.provider, r.attempts) for r in later} == {(Outcome.SENT, "secondary", 1)}
    assert primary.connections() == knocks  # an open breaker: not even a connection
    assert len(secondary.counts_by_key()) == 12 and set(secondary.counts_by_key().values()) == {1}


def test_an_operator_forced_open_breaker_sends_everything_to_the_secondary(sinks, clock, build):
    primary, secondary = sinks
    assert secondary.connections() == 0
    breakers = BreakerRegistry(clock=clock)
    breakers.force_open("provider:primary", "relay maintenance", for_=600)
    deliverer = build(sinks, breakers=breakers)
    result = deliverer.deliver(message("send:1:1"))
    assert (result.outcome, result.provider, result.attempts) == (Outcome.SENT, "secondary", 1)
    assert primary.connections() == 0
    assert secondary.counts_by_key() == Counter({"send:1:1": 1})


def test_unknowns_count_against_the_breaker_and_every_breaker_open_defers(sinks, clock, build):
    primary, secondary = sinks
    primary.faults = FaultPlan({Fault.DROP_AFTER_DATA: 1.0})
    breakers = BreakerRegistry(Breaker.consecutive(2), clock=clock)
    breakers.force_open("provider:secondary", "drill", for_=600)
    deliverer = build(sinks, breakers=breakers)
    outcomes = [deliverer.deliver(message(f"send:1:{i}")).outcome for i in range(3)]
    assert outcomes == [Outcome.UNKNOWN, Outcome.UNKNOWN, Outcome.DEFERRED]
    assert breakers.provider("primary").state is State.OPEN
    deferred = deliverer.ledger.get("send:1:2")
    assert deferred is not None and deferred.state is EntryState.FAILED
    assert len(primary.received()) == 2 and secondary.received() == []


def test_pacing_waits_per_recipient_domain_and_defers_past_max_wait(sinks, clock, build):
    pacer = Pacer("1/second", max_wait=1.5, clock=clock)
    deliverer = build(sinks[:1], pacer=pacer)
    start = clock.monotonic()
    for i in range(3):
        assert deliverer.deliver(message(f"send:1:{i}", f"u{i}@gmail.com")).outcome is Outcome.SENT
    assert clock.monotonic() - start == pytest.approx(2.0)  # spaced 1 s apart
    other = deliverer.deliver(message("send:1:9", "someone@yahoo.com"))
    assert other.outcome is Outcome.SENT and clock.monotonic() - start == pytest.approx(2.0)

    slow = Pacer("1/minute", max_wait=1.5, clock=clock)
    paced = build(sinks[:1], pacer=slow, ledger=Ledger(name="paced", clock=clock))
    assert paced.deliver(message("send:2:1", "a@tiny.example")).outcome is Outcome.SENT
    refused = paced.deliver(message("send:2:2", "b@tiny.example"))
    assert (refused.outcome, refused.attempts) == (Outcome.DEFERRED, 0)
    assert "pac" in refused.detail
    entry = paced.ledger.get("send:2:2")
    assert entry is not None and entry.state is EntryState.FAILED


def test_an_unreachable_ledger_defers_without_sending(sinks, clock, build):
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    ledger = Ledger(f"redis://127.0.0.1:{port}/0", name="sends", clock=clock)
    deliverer = build(sinks, ledger=ledger)
    result = deliverer.deliver(message("send:1:1"))
    assert (result.outcome, result.attempts) == (Outcome.DEFERRED, 0)
    assert "ledger" in result.detail
    assert sinks[0].received() == [] and sinks[0].connections() == 0


def test_a_key_reused_for_another_recipient_is_not_sent(sinks, clock, build):
    deliverer = build(sinks)
    assert deliverer.deliver(message("send:1:1", "a@example.com")).outcome is Outcome.SENT
    reused = deliverer.deliver(message("send:1:1", "b@example.com"))
    assert reused.outcome is Outcome.DUPLICATE and "different recipient" in reused.detail
    assert [m.recipient for m in sinks[0].received()] == ["a@example.com"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("key", ""),
        ("key", "send 1"),
        ("key", "send:ü"),
        ("recipient", "ü@example.com"),
        ("body", "\ud800"),
        ("subject", "tab\tin it"),
        ("recipient", "no-at-sign"),
        ("recipient", "a@example.com\r\nBcc: x@example.com"),
        ("subject", "two\nlines"),
        ("sender", "<a@example.com>"),
    ],
)
def test_bad_messages_are_refused_naming_the_field(field, value):
    fields = {"key": "k", "sender": SENDER, "recipient": "a@example.com", "subject": "s"}
    fields["body"] = "b"
    fields[field] = value
    with pytest.raises(ValueError, match=rf"OutboundMessage\.{field}"):
        OutboundMessage(**fields)


def test_bad_configuration_is_refused(sinks, clock):
    ledger = Ledger(name="x", clock=clock)
    with pytest.raises(ConfigError, match="at least one provider"):
        Deliverer([], ledger=ledger)
    twice = [provider_for(sinks[0]), provider_for(sinks[0])]
    with pytest.raises(ConfigError, match="'primary' twice"):
        Deliverer(twice, ledger=ledger)
    with pytest.raises(ConfigError, match=r"Deliverer\.ledger"):
        Deliverer([provider_for(sinks[0])], ledger="memory://")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Deliverer\.retry"):
        Deliverer([provider_for(sinks[0])], ledger=ledger, retry=3)  # type: ignore[arg-type]
