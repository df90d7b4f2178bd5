"""Drill ``smtp-fog-of-war``: an SMTP server dies mid-send, and nobody knows what went (#6).

`FULL_RECIPIENTS` readers get one newsletter through two real SMTP sinks on loopback
(`sendguard.pipeline.SinkServer`, aiosmtpd). The primary takes the body and then closes
the connection without a reply for a share of the messages (`FAULTS`: stored, but the
sender hears nothing), answers 451 to a few, and crashes for good at its
`CRASH_AT`-th message (share of the list): from then on every connection is reset, and the
messages in flight at that moment are lost after their body went out. The secondary sink
is healthy. Which message gets which fault is drawn from a seed (`FaultPlan`), so the
figures repeat; the crash comes at a message count, not at a time.

Unguarded: the sender a team has before sendguard, built here from `smtplib` alone.
`WORKERS` threads send each message to the primary, on a new connection, and try again
up to `NAIVE_ATTEMPTS` times on any error, a dropped connection after DATA included (so a
message the primary stored goes out again). There is no breaker: after the crash every
remaining message still tries the dead primary that many times. A message is marked sent
on a 250 only. Then an operator fails over and resends, through the secondary, everything
not marked sent.

Guarded: the reference pipeline as built (`sendguard.pipeline.Pipeline`, embedded: SQLite
records, in-process workers, the same two sinks), whose `Deliverer` puts every message
through the idempotency ledger, a breaker per provider with failover, and budgeted
retries of transient errors only. A message with no reply after its body is *unknown*:
never resent, listed for an operator.

The truth comes from the sinks: what each stored, per recipient. The sinks' fault plans
also witness which messages were stored without a reply (in doubt).
"""

from __future__ import annotations

import queue
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sendguard.drills._base import Drill, Goal, Metric, Value
from sendguard.pipeline.faults import Fault, FaultPlan

if TYPE_CHECKING:
    from sendguard.pipeline.sinks import SinkServer

__all__ = ["DRILL", "FogRun", "Witness", "figures", "recipients", "replay", "run_fog"]

FULL_RECIPIENTS = 1000
"""Readers at scale 1.0 (a smaller scale has fewer)."""
CRASH_AT = 0.4
"""The primary crashes at its message number ``CRASH_AT * recipients`` (retries count)."""
DROPPED = 0.05
"""Share of the primary's messages it stores, then hangs up on without a reply."""
TRANSIENT = 0.02
"""Share of the primary's messages answered 451 (nothing stored: safe to retry)."""
SEED = 12
WORKERS = 4
"""Sending threads, in both runs (the pipeline's worker threads, or the naive sender's)."""
NAIVE_ATTEMPTS = 3
"""Attempts the naive sender makes per message, on any error."""
SMTP_TIMEOUT = 2.0
SUBJECT, BODY = "The autumn issue", "Hello!\n\nOur news, in brief."
_DOMAINS = ("example.com", "example.net", "example.org")


def recipients(scale: float) -> list[str]:
    """The list at `scale`: generated addresses over three domains (as `Pipeline` makes)."""
    count = round(FULL_RECIPIENTS * scale)
    return [f"reader{n}@{_DOMAINS[n % len(_DOMAINS)]}" for n in range(count)]


# --- the sinks' fault plans, which also witness what happened ------------------------------


@dataclass(eq=False)
class Witness(FaultPlan):
    """A sink's `FaultPlan` (seeded faults as usual) that also records what the sink saw:
    when each message arrived, which recipients drew a dropped connection, and, with
    `crash_at`, crashes the sink (``down``) at its `crash_at`-th message."""

    crash_at: int | None = None
    sink: SinkServer | None = field(default=None, repr=False)
    """The sink this plan serves (to count its connections at the crash)."""
    arrivals: list[float] = field(default_factory=list, init=False, repr=False)
    dropped: set[str] = field(default_factory=set, init=False, repr=False)
    died: float | None = field(default=None, init=False)
    connections_at_death: int = field(default=0, init=False)

    def fault_for(self, recipient: str, attempt: int) -> Fault:
        """The seeded fault; the sink asks at RCPT, once per incoming message."""
        crash = self.crash_at is not None and len(self.arrivals) + 1 >= self.crash_at
        if crash and not self.down:
            self.down = True  # new connections are reset, open sessions at their next command
            self.died = time.monotonic()
            self.connections_at_death = self.sink.connections() if self.sink else 0
        self.arrivals.append(time.monotonic())
        fault = super().fault_for(recipient, attempt)
        if fault is Fault.DROP_AFTER_DATA:
            self.dropped.add(recipient)
        return fault


@dataclass
class FogRun:
    """What one run left behind: the sinks' truth and what the sender listed."""

    recipients: list[str]
    stored: Counter[str]
    """Copies stored per recipient, over both sinks."""
    in_doubt: set[str]
    """Recipients a sink stored a message for without answering (a dropped connection)."""
    listed: set[str] | None
    """Recipients listed for an operator as unknown (None: the sender lists nothing)."""
    dead_connections: int
    """Connections made to the primary after it died."""
    failover: float | None
    """Seconds from the primary's death to the secondary's first message after it."""
    wall: float
    states: dict[str, int]
    """The sender's own view: messages per state."""
    received: dict[str, int]
    """Messages each sink stored, by sink name."""


@dataclass
class _Bench:
    """The two sinks of one run and their plans."""

    primary: SinkServer
    secondary: SinkServer
    primary_plan: Witness
    secondary_plan: Witness

    @classmethod
    def build(cls, scale: float) -> _Bench:
        from sendguard.pipeline.sinks import SinkServer

        crash_at = max(1, round(CRASH_AT * len(recipients(scale))))
        rates = {Fault.DROP_AFTER_DATA: DROPPED, Fault.TRANSIENT: TRANSIENT}
        primary_plan = Witness(rates, seed=SEED, crash_at=crash_at)
        secondary_plan = Witness(seed=SEED)
        primary = SinkServer("primary", faults=primary_plan)
        primary_plan.sink = primary
        secondary = SinkServer("secondary", faults=secondary_plan)
        return cls(primary, secondary, primary_plan, secondary_plan)

    def outcome(
        self, readers: list[str], listed: set[str] | None, wall: float, states: dict[str, int]
    ) -> FogRun:
        """The run's truth, from what the sinks stored and saw."""
        stored: Counter[str] = Counter()
        in_doubt: set[str] = set()
        received: dict[str, int] = {}
        for sink, plan in (
            (self.primary, self.primary_plan),
            (self.secondary, self.secondary_plan),
        ):
            here = Counter(message.recipient for message in sink.received())
            stored.update(here)
            received[sink.name] = sum(here.values())
            in_doubt |= {recipient for recipient in plan.dropped if here[recipient]}
        died = self.primary_plan.died
        if died is None:
            dead, failover = 0, None
        else:
            dead = self.primary.connections() - self.primary_plan.connections_at_death
            later = [t for t in self.secondary_plan.arrivals if t >= died]
            failover = min(later) - died if later else None
        return FogRun(readers, stored, in_doubt, listed, dead, failover, wall, states, received)


# --- unguarded: smtplib, retries on anything, then a blind resend ---------------------------


def _naive_send(sink: SinkServer, recipient: str) -> None:
    """One message on a connection of its own, as a first version of a sender does."""
    message = EmailMessage()
    message["From"] = "newsletter@sendguard.test"
    message["To"] = recipient
    message["Subject"] = SUBJECT
    message.set_content(BODY)
    with smtplib.SMTP(sink.host, sink.port, timeout=SMTP_TIMEOUT) as client:
        client.send_message(message)


def _naive_pass(sink: SinkServer, todo: Sequence[str], marked: set[str]) -> None:
    """Send `todo` through `sink` with `WORKERS` threads, retrying on any error; mark
    each message sent on a 250 (and only then)."""
    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for recipient in todo:
        work.put(recipient)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                recipient = work.get_nowait()
            except queue.Empty:
                return
            for _ in range(NAIVE_ATTEMPTS):
                try:
                    _naive_send(sink, recipient)
                except (smtplib.SMTPException, OSError):
                    continue  # whatever it was, try again: a dropped reply included
                with lock:
                    marked.add(recipient)
                break

    threads = [threading.Thread(target=worker, name=f"naive-{n}") for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _unguarded(readers: list[str], bench: _Bench) -> FogRun:
    started = time.monotonic()
    marked: set[str] = set()
    _naive_pass(bench.primary, readers, marked)
    first = len(marked)
    # The operator fails over and resends whatever is not marked sent.
    _naive_pass(bench.secondary, [r for r in readers if r not in marked], marked)
    states = {"sent by the workers": first, "resent by the operator": len(marked) - first}
    return bench.outcome(readers, None, time.monotonic() - started, states)


# --- guarded: the reference pipeline ---------------------------------------------------------


def _guarded(readers: list[str], bench: _Bench) -> FogRun:
    from sendguard.pipeline import DeliveryState, Pipeline, PipelineConfig, ProviderConfig

    primary, secondary = bench.primary, bench.secondary
    config = PipelineConfig(
        providers=(
            ProviderConfig("primary", primary.host, primary.port, timeout=SMTP_TIMEOUT),
            ProviderConfig("secondary", secondary.host, secondary.port, timeout=SMTP_TIMEOUT),
        ),
        worker_threads=WORKERS,
        pace="1000/second",  # per domain: pacing is not what this drill is about
        pace_burst=100,
    )
    started = time.monotonic()
    with Pipeline(config, cron=False) as pipeline:
        email = pipeline.create_email(SUBJECT, BODY)
        mailing = pipeline.create_list("readers", readers)
        pipeline.send(email.id, mailing.id)
        pipeline.drain(timeout=60)
        wall = time.monotonic() - started
        unknown = pipeline.records.deliveries(email.id, (DeliveryState.UNKNOWN,))
        states = {s.value: n for s, n in pipeline.records.state_counts(email.id).items()}
    return bench.outcome(readers, {row.address for row in unknown}, wall, states)


def run_fog(*, guarded: bool, scale: float = 1.0) -> FogRun:
    """One run on fresh sinks: the pipeline (`guarded`) or the naive sender."""
    readers = recipients(scale)
    bench = _Bench.build(scale)
    with bench.primary, bench.secondary:
        return (_guarded if guarded else _unguarded)(readers, bench)


# --- figures ---------------------------------------------------------------------------------

ONCE = Metric("delivered_once", "delivered exactly once", "rcpts")
DUPLICATES = Metric("duplicates", "duplicates (got 2+ copies)", "rcpts")
IN_DOUBT = Metric("in_doubt", "stored with no reply (in doubt)", "msgs")
LISTED = Metric("unknown_listed", "unknown outcomes listed", "msgs")
LISTED_DELIVERED = Metric("unknown_delivered", "listed unknowns actually delivered", "msgs")
UNLISTED = Metric("unlisted", "in doubt but not listed", "msgs")
LOST = Metric("lost", "lost (not delivered, not listed)", "rcpts")
DEAD = Metric("dead_connections", "connections to the dead primary", "conns")
FAILOVER = Metric("failover_s", "failover time (death to secondary)", "s", 2)
WALL = Metric("wall_s", "wall time", "s", 1)


METRICS = (ONCE, DUPLICATES, IN_DOUBT, LISTED, LISTED_DELIVERED, UNLISTED, LOST, DEAD, FAILOVER,
           WALL)  # fmt: skip


def figures(run: FogRun) -> dict[str, Value]:
    """The figures of `run`, keyed by metric."""
    listed = run.listed or set()
    return {
        ONCE.key: sum(run.stored[r] == 1 for r in run.recipients),
        DUPLICATES.key: sum(run.stored[r] >= 2 for r in run.recipients),
        IN_DOUBT.key: len(run.in_doubt),
        LISTED.key: len(listed),
        LISTED_DELIVERED.key: sum(run.stored[r] > 0 for r in listed) if listed else None,
        UNLISTED.key: len(run.in_doubt - listed),
        LOST.key: sum(run.stored[r] == 0 and r not in listed for r in run.recipients),
        DEAD.key: run.dead_connections,
        FAILOVER.key: run.failover,
        WALL.key: run.wall,
    }


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    return figures(run_fog(guarded=guarded, scale=scale))


DRILL = Drill(
    name="smtp-fog-of-war",
    incident="an SMTP server drops replies after DATA, then dies mid-send (#6)",
    metrics=METRICS,
    goals=(
        Goal.at_most(DUPLICATES, 0, "nobody gets the newsletter twice"),
        Goal.at_most(LOST, 0, "every message delivered or listed as unknown"),
        Goal.at_most(UNLISTED, 0, "every message in doubt is listed for an operator"),
        Goal.at_most(DEAD, 20, "at most {bound} connections to the dead primary"),
        Goal.at_most(FAILOVER, 1, "traffic on the secondary within {bound} s of the death"),
    ),
    replay=replay,
    headline=DUPLICATES.key,
    min_scale=0.25,
)
"""The ``smtp-fog-of-war`` drill."""
