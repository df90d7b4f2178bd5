"""Drill ``provider-outage``: the primary email provider goes dark mid-send (INCIDENTS.md #6, #8).

A pool of `WORKERS` senders delivers messages that arrive at a steady rate, each one
through the primary provider, failing over to a secondary one when the primary fails.
Twenty seconds in, the primary browns out (it still answers, but takes
`BROWNOUT_LATENCY` seconds: incident #8's slow check), then goes dead (every call hangs
until the sender's `SEND_TIMEOUT` and raises `TimeoutError`: incident #6's crashed
server); later it recovers. All of it runs on simulated time, so the drill is quick and
gives the same figures on every run (message latencies are drawn from a seeded RNG).

Unguarded, every message in the outage first waits on the sick primary; the pool backs
up and latency climbs for the whole outage. Guarded, each send goes through a per-provider
breaker with `POLICY`: it trips on slow calls as well as failures, traffic then fails
over at once (`BreakerOpen` -> secondary), and half-open probes bring the primary back
once it recovers.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Literal

from sendguard import Event
from sendguard.breakers import (
    Breaker,
    BreakerOpen,
    BreakerRegistry,
    BreakerTransition,
    CircuitBreaker,
    State,
    Window,
)
from sendguard.drills._base import Drill, Goal, Metric, Value, percentile, simulate
from sendguard.testing import FakeClock

__all__ = ["DRILL", "POLICY", "OutageRun", "Timeline", "replay", "simulate_outage"]

SEND_TIMEOUT = 2.0
"""Seconds a sender waits for a provider before giving up with `TimeoutError`."""
SLOW_CALL = 1.0
"""A send taking this many seconds or more is slow (a healthy one takes under 0.1 s)."""

POLICY = Breaker.rate(
    0.5,  # trip when half the calls in the window failed...
    slow=SLOW_CALL,  # ...or were slow, even if they succeeded (incident #8)
    window=Window.count(10),  # judged over the last 10 calls to this provider (half a
    min_calls=5,  # second of traffic at full scale), once it holds at least 5 calls
    open_for=5.0,  # refuse for 5 s, then let probes through
    open_backoff=2.0,  # each reopening in a row doubles that...
    max_open_for=10.0,  # ...up to 10 s, which bounds how late the primary comes back
    half_open_calls=3,  # three probe sends in a row must succeed to close it
    half_open_max_wait=2 * SEND_TIMEOUT,  # a probe is one send, bounded by the timeout
)
"""The breaker every provider gets in the guarded run."""

FULL_MESSAGES = 2000
"""Messages sent at scale 1.0 (a smaller scale sends fewer over the same incident)."""
SPAN = 100.0
"""Seconds over which the messages arrive, at a steady rate (20 a second at scale 1.0)."""
WORKERS = 8
"""Concurrent senders: ample for the normal load (a sixth busy at scale 1.0)."""
BROWNOUT_LATENCY = 1.5
"""Seconds the browning-out primary takes to accept a message."""
HANG = 3600.0
"""How long a dead provider keeps a call waiting (it accepts it and never answers)."""
SEED = 6

OUTAGE_START, DEAD_FROM, RECOVERY = 20.0, 30.0, 60.0
"""Seconds into the run when the primary browns out, dies, and comes back."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """When things happen in one run, in seconds from its start."""

    messages: int
    span: float = SPAN
    outage_start: float = OUTAGE_START
    dead_from: float = DEAD_FROM
    recovery: float = RECOVERY

    @classmethod
    def at_scale(cls, scale: float) -> Timeline:
        """The timeline of a run at `scale`: the same incident, `scale` times the traffic."""
        return cls(round(FULL_MESSAGES * scale))

    def arrival(self, index: int) -> float:
        """When message number `index` arrives."""
        return index * self.span / self.messages

    def phase(self, at: float) -> Literal["healthy", "brownout", "dead"]:
        """What the primary does with a call made at `at`."""
        if self.outage_start <= at < self.dead_from:
            return "brownout"
        if self.dead_from <= at < self.recovery:
            return "dead"
        return "healthy"


@dataclass(frozen=True, slots=True)
class Message:
    """One message: when it arrives and how long each provider takes with it."""

    arrival: float
    primary_latency: float
    secondary_latency: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message delivered."""

    arrival: float
    delivered: float
    via: Literal["primary", "secondary"]
    failed_over: bool
    """True when the primary was tried first and failed (else it was never tried, or it sent)."""


@dataclass(frozen=True, slots=True)
class PrimaryCall:
    """One call that reached the primary provider."""

    start: float
    end: float
    ok: bool

    @property
    def wasted(self) -> bool:
        """True when the call failed or was slow (a sender sat waiting on a sick provider)."""
        return not self.ok or self.end - self.start >= SLOW_CALL


@dataclass(frozen=True, slots=True)
class OutageRun:
    """Everything one run recorded, in seconds from its start."""

    timeline: Timeline
    deliveries: tuple[Delivery, ...]
    primary_calls: tuple[PrimaryCall, ...]
    transitions: tuple[tuple[float, BreakerTransition], ...]

    def latencies(self) -> list[float]:
        """Send latencies (arrival to delivery), sorted."""
        return sorted(d.delivered - d.arrival for d in self.deliveries)

    def time_to_detect(self) -> float | None:
        """Outage start to the breaker opening (None if it never opened in the outage)."""
        start = self.timeline.outage_start
        opened = (t for t, e in self.transitions if e.to_state == State.OPEN.value and t >= start)
        found = next(opened, None)
        return None if found is None else found - start

    def time_to_recover(self) -> float | None:
        """Primary recovery to the first call the primary served again."""
        back = self.timeline.recovery
        calls = (c.start for c in self.primary_calls if c.ok and c.start >= back)
        found = next(calls, None)
        return None if found is None else found - back


def _messages(timeline: Timeline) -> list[Message]:
    rng = random.Random(SEED)
    return [
        Message(timeline.arrival(i), rng.uniform(0.04, 0.09), rng.uniform(0.10, 0.20))
        for i in range(timeline.messages)
    ]


class _Sender:
    """The sending pipeline of one run: providers, the optional breaker, and what happened."""

    def __init__(
        self, timeline: Timeline, clock: FakeClock, breaker: CircuitBreaker | None
    ) -> None:
        self.timeline = timeline
        self.clock = clock
        self.t0 = clock.monotonic()
        self.breaker = breaker
        self.deliveries: list[Delivery] = []
        self.primary_calls: list[PrimaryCall] = []

    def now(self) -> float:
        """Seconds since the run started."""
        return self.clock.monotonic() - self.t0

    async def _primary(self, message: Message) -> None:
        """The primary provider as the sender sees it: a call with a timeout."""
        start = self.now()
        latency = {
            "healthy": message.primary_latency,
            "brownout": BROWNOUT_LATENCY,
            "dead": HANG,
        }[self.timeline.phase(start)]
        ok = False
        try:
            await asyncio.wait_for(asyncio.sleep(latency), SEND_TIMEOUT)
            ok = True
        finally:
            self.primary_calls.append(PrimaryCall(start, self.now(), ok))

    async def deliver(self, message: Message) -> None:
        """Send through the primary (guarded or not); fail over to the secondary."""
        via: Literal["primary", "secondary"] = "primary"
        failed_over = False
        try:
            if self.breaker is None:
                await self._primary(message)
            else:
                await self.breaker.acall(self._primary, message)
        except (TimeoutError, BreakerOpen) as exc:
            via, failed_over = "secondary", isinstance(exc, TimeoutError)
            await asyncio.sleep(message.secondary_latency)
        self.deliveries.append(Delivery(message.arrival, self.now(), via, failed_over))

    async def run(self, messages: list[Message]) -> None:
        """Feed the messages to a pool of workers at their arrival times; wait for all."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue()

        async def worker() -> None:
            while (message := await queue.get()) is not None:
                await self.deliver(message)

        async with asyncio.TaskGroup() as group:
            for _ in range(WORKERS):
                group.create_task(worker())
            for message in messages:
                await asyncio.sleep(max(0.0, message.arrival - self.now()))
                queue.put_nowait(message)
            for _ in range(WORKERS):
                queue.put_nowait(None)


def simulate_outage(*, guarded: bool, scale: float = 1.0) -> OutageRun:
    """Replay the outage once on simulated time and record everything."""
    timeline = Timeline.at_scale(scale)
    clock = FakeClock()
    transitions: list[tuple[float, BreakerTransition]] = []
    t0 = clock.monotonic()

    def record(event: Event) -> None:
        if isinstance(event, BreakerTransition):
            transitions.append((clock.monotonic() - t0, event))

    breaker = None
    if guarded:
        registry = BreakerRegistry(POLICY, clock=clock, hooks=[record], rng=random.Random(SEED))
        breaker = registry.provider("primary")
    sender = _Sender(timeline, clock, breaker)
    simulate(clock, lambda: sender.run(_messages(timeline)))
    return OutageRun(
        timeline, tuple(sender.deliveries), tuple(sender.primary_calls), tuple(transitions)
    )


DELIVERED = Metric("delivered", "messages delivered", "msgs")
P50 = Metric("p50_ms", "p50 send latency", "ms")
P95 = Metric("p95_ms", "p95 send latency", "ms")
WORST = Metric("max_s", "slowest send", "s", digits=1)
WASTED = Metric("wasted", "calls wasted on the sick primary", "calls")
DETECT = Metric("detect_s", "time to detect (outage to open)", "s", digits=1)
RECOVER = Metric("recover_s", "time back on the primary", "s", digits=1)


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_outage(guarded=guarded, scale=scale)
    latencies = run.latencies()
    return {
        DELIVERED.key: len(run.deliveries),
        P50.key: 1000 * (percentile(latencies, 0.50) or 0.0),
        P95.key: 1000 * (percentile(latencies, 0.95) or 0.0),
        WORST.key: latencies[-1],
        WASTED.key: sum(call.wasted for call in run.primary_calls),
        DETECT.key: run.time_to_detect(),
        RECOVER.key: run.time_to_recover(),
    }


DRILL = Drill(
    name="provider-outage",
    incident="the primary email provider slows, then times out, then recovers (#6, #8)",
    metrics=(DELIVERED, P50, P95, WORST, WASTED, DETECT, RECOVER),
    goals=(
        Goal.at_least(
            DELIVERED, lambda scale: Timeline.at_scale(scale).messages, "every message delivered"
        ),
        Goal.at_most(P95, 500, "p95 send latency at most {bound} ms"),
        Goal.at_most(WORST, 5, "no send takes over {bound} s"),
        Goal.at_most(WASTED, 30, "at most {bound} calls wasted on the sick primary"),
        Goal.at_most(DETECT, 5, "breaker opens within {bound} s of the outage"),
        Goal.at_most(RECOVER, 15, "traffic back on the primary within {bound} s"),
    ),
    replay=replay,
    headline=P95.key,
    min_scale=0.25,
)
"""The ``provider-outage`` drill."""
