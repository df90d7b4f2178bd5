"""What `Deliverer` promises, under random faults, threads, a shared Redis ledger, and long
backoffs: nothing is received twice, and every outcome matches what the sinks hold."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sendguard.backoff import Jitter, RetryPolicy
from sendguard.breakers import Breaker, BreakerRegistry
from sendguard.jobs import EntryState, Ledger
from sendguard.pipeline.delivery import Deliverer, DeliveryResult, OutboundMessage, Outcome
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.sinks import SinkServer
from sendguard.testing import FakeClock
from tests.pipeline._mail import message, provider_for

SETTLED = {Outcome.SENT, Outcome.UNKNOWN, Outcome.REJECTED}
_examples = itertools.count()


@pytest.fixture(scope="module")
def sinks() -> Iterator[tuple[SinkServer, SinkServer]]:
    with SinkServer("primary", hang_seconds=2) as a, SinkServer("secondary", hang_seconds=2) as b:
        yield a, b


def received(sinks: Iterable[SinkServer], keys: Iterable[str]) -> Counter[str]:
    total: Counter[str] = Counter()
    for sink in sinks:
        total.update(sink.counts_by_key())
    wanted = set(keys)
    return Counter({key: n for key, n in total.items() if key in wanted})


def check(results: Iterable[DeliveryResult], counts: Counter[str]) -> None:
    """Each key: settled at most once, nothing after that but duplicates, and the sinks
    hold what the outcome says (SENT once, UNKNOWN at most once, otherwise never)."""
    by_key: defaultdict[str, list[Outcome]] = defaultdict(list)
    for result in results:
        by_key[result.key].append(result.outcome)
    for key, outcomes in by_key.items():
        settled = [i for i, outcome in enumerate(outcomes) if outcome in SETTLED]
        assert len(settled) <= 1, (key, outcomes)
        if settled:
            assert set(outcomes[settled[0] + 1 :]) <= {Outcome.DUPLICATE}, (key, outcomes)
        if Outcome.SENT in outcomes:
            assert counts[key] == 1, (key, outcomes, counts[key])
        elif Outcome.UNKNOWN in outcomes:
            assert counts[key] <= 1, (key, outcomes, counts[key])
        else:
            assert counts[key] == 0, (key, outcomes, counts[key])


def fault_plans() -> st.SearchStrategy[FaultPlan]:
    kinds = {
        Fault.TRANSIENT: 0.5,
        Fault.PERMANENT: 0.3,
        Fault.DROP_AFTER_DATA: 0.3,
        Fault.REFUSE: 0.3,
        Fault.HANG: 0.08,
    }
    rates = st.fixed_dictionaries({kind: st.floats(0, top) for kind, top in kinds.items()})
    return st.builds(
        lambda r, seed: FaultPlan(
            {k: v / max(1.0, sum(r.values())) for k, v in r.items()}, seed=seed
        ),
        rates,
        st.integers(0, 2**31),
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    primary_plan=fault_plans(),
    secondary_plan=fault_plans(),
    secondary_down=st.booleans(),
    picks=st.lists(st.integers(0, 5), min_size=1, max_size=8),
)
def test_random_faults_never_deliver_twice(
    sinks, primary_plan, secondary_plan, secondary_down, picks
):
    primary, secondary = sinks
    example = next(_examples)
    secondary_plan.down = secondary_down
    primary.faults, secondary.faults = primary_plan, secondary_plan
    clock = FakeClock()
    deliverer = Deliverer(
        [provider_for(primary, timeout=0.2), provider_for(secondary, timeout=0.2)],
        ledger=Ledger(name=f"sends-{example}", clock=clock),
        breakers=BreakerRegistry(Breaker.consecutive(4), clock=clock),
        retry=RetryPolicy(attempts=3),
        clock=clock,
    )
    messages = [message(f"send:{example}:{n}") for n in picks]
    keys = {m.key for m in messages}
    try:
        first = [deliverer.deliver(m) for m in messages]
        after_first = received(sinks, keys)
        check(first, after_first)
        second = [deliverer.deliver(m) for m in messages]  # every message again
        after_second = received(sinks, keys)
        check(first + second, after_second)
        for result in first:
            if result.outcome in SETTLED:
                assert after_second[result.key] == after_first[result.key]
        stats = deliverer.stats()
        assert sum(v for k, v in stats.items() if k != "attempts") == 2 * len(messages)
        assert stats["attempts"] == sum(r.attempts for r in first + second)
    finally:
        deliverer.close()
        primary.faults, secondary.faults = FaultPlan(), FaultPlan()


def deliver_all(deliverer: Deliverer, batches: list[list[OutboundMessage]]) -> list[DeliveryResult]:
    """Deliver each batch from a thread of its own; every result, in no particular order."""
    results: list[DeliveryResult] = []
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work(batch: list[OutboundMessage]) -> None:
        try:
            for item in batch:
                outcome = deliverer.deliver(item)
                with lock:
                    results.append(outcome)
        except BaseException as error:  # surfaced below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    assert sum(map(len, batches)) == len(results)
    return results


def test_threads_with_overlapping_keys_never_deliver_twice(sinks):
    primary, secondary = sinks
    primary.faults = FaultPlan({Fault.TRANSIENT: 0.2, Fault.DROP_AFTER_DATA: 0.05}, seed=1)
    secondary.faults = FaultPlan({Fault.TRANSIENT: 0.1, Fault.PERMANENT: 0.05}, seed=2)
    clock = FakeClock()
    deliverer = Deliverer(
        [
            provider_for(primary, timeout=2, max_sessions=2),
            provider_for(secondary, timeout=2, max_sessions=2),
        ],
        ledger=Ledger(name="threads", clock=clock),
        breakers=BreakerRegistry(Breaker.consecutive(50), clock=clock),
        clock=clock,
    )
    shared = [message(f"send:shared:{n}") for n in range(60)]
    batches = []
    for worker in range(4):
        mine = shared[:]
        random.Random(worker).shuffle(mine)
        batches.append(mine + [message(f"send:own{worker}:{n}") for n in range(15)])
    try:
        results = deliver_all(deliverer, batches)
        keys = {r.key for r in results}
        counts = received(sinks, keys)
        check(sorted(results, key=lambda r: r.outcome is Outcome.DUPLICATE), counts)
        assert max(counts.values()) == 1
        assert sum(r.outcome is Outcome.SENT for r in results) >= 100
        assert sum(r.outcome is Outcome.DUPLICATE for r in results) >= 3 * 60
    finally:
        deliverer.close()
        primary.faults, secondary.faults = FaultPlan(), FaultPlan()


@pytest.mark.redis
def test_two_workers_sharing_a_redis_ledger_send_each_key_once(sinks, redis_url):
    primary, secondary = sinks
    primary.faults = FaultPlan({Fault.DROP_AFTER_DATA: 0.1, Fault.TRANSIENT: 0.1}, seed=9)
    name = f"sends-{uuid.uuid4().hex[:8]}"
    workers = [
        Deliverer(
            [provider_for(primary), provider_for(secondary)],
            ledger=Ledger(redis_url, name=name),
            retry=RetryPolicy(attempts=2, base=0.01, cap=0.02),
        )
        for _ in range(2)
    ]
    batch = [message(f"send:redis:{n}") for n in range(40)]
    try:
        results: list[DeliveryResult] = []
        lock = threading.Lock()

        def work(worker: Deliverer) -> None:
            for item in batch:
                outcome = worker.deliver(item)
                with lock:
                    results.append(outcome)

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == 80
        counts = received(sinks, {m.key for m in batch})
        check(sorted(results, key=lambda r: r.outcome is Outcome.DUPLICATE), counts)
        unknown = {r.key for r in results if r.outcome is Outcome.UNKNOWN}
        assert unknown  # the plan drops some after DATA: listed in Redis for an operator
        listed = {entry.key for entry in workers[1].ledger.unknowns()}
        assert listed == unknown
    finally:
        for worker in workers:
            worker.close()
            worker.ledger.close()
        primary.faults = FaultPlan()


class SteppingClock(FakeClock):
    """A fake clock that runs `during_sleep` each time code under test sleeps on it."""

    def __init__(self) -> None:
        super().__init__()
        self.during_sleep: list[object] = []
        self.hook: object = None

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if callable(self.hook):
            self.during_sleep.append(self.hook())


def test_long_backoffs_keep_the_ledger_lease(sinks):
    primary, secondary = sinks
    primary.faults = FaultPlan({Fault.TRANSIENT: 1.0})
    clock = SteppingClock()
    ledger = Ledger(name="lease", clock=clock)  # a 60 s lease; three 30 s backoffs below
    policy = RetryPolicy(attempts=4, base=30, cap=30, jitter=Jitter.NONE)
    sender = Deliverer([provider_for(primary), provider_for(secondary)], ledger=ledger,
                       retry=policy, clock=clock)  # fmt: skip
    rival = Deliverer([provider_for(secondary)], ledger=ledger, clock=clock)
    item = message("send:lease:1")
    clock.hook = lambda: rival.deliver(item)  # another worker tries mid-backoff
    try:
        result = sender.deliver(item)
        assert (result.outcome, result.provider, result.attempts) == (Outcome.SENT, "secondary", 5)
        assert len(clock.during_sleep) == 3
        for seen in clock.during_sleep:
            assert isinstance(seen, DeliveryResult) and seen.outcome is Outcome.DUPLICATE
            assert "another attempt is sending it" in seen.detail  # never "unknown"
        entry = ledger.get(item.key)
        assert entry is not None and entry.state is EntryState.COMPLETED
        assert received(sinks, {item.key}) == Counter({item.key: 1})
    finally:
        sender.close()
        rival.close()
        primary.faults = FaultPlan()
