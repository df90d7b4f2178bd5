"""Drill ``replay-duplicates``: a batch replayed after an outage (INCIDENTS.md #5 and #6).

10,000 messages go out through a flaky provider: some sends are refused before the
message is accepted (a sure failure), some lose the connection after SMTP DATA (the
provider may or may not have taken the message: nobody can know), and partway through
the batch every worker is killed, each with one message in flight, some of them already
handed to the provider. After recovery the whole batch is replayed from the fallback
queue, as in incident #5.

Unguarded, the replay sends everything again: each message that had gone out goes out
twice, and the in-doubt ones are resent blindly. Guarded, each send runs under an
idempotency `Ledger` (in memory, on a fake clock): completed messages replay as no-ops,
surely-failed ones are sent again, and every message whose outcome is unknown (a dropped
connection, a killed worker's expired lease) is refused and listed for an operator,
who can check the provider's logs before anything is resent (incident #6).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sendguard.drills._base import Drill, Goal, Metric, Value
from sendguard.jobs import Attempt, Ledger, LedgerError, LedgerPolicy, MemoryLedgerStore
from sendguard.jobs._ledger import fingerprint
from sendguard.testing import FakeClock

__all__ = ["DRILL", "ReplayRun", "replay", "simulate_replay"]

FULL_MESSAGES = 10_000
WORKERS = 8
KILLED_AT = 0.4
"""Share of the batch done when every worker is killed."""
REFUSED = 0.03
"""Share of sends the provider refuses before accepting the message (a sure failure)."""
DROPPED = 0.02
"""Share of sends whose connection drops after DATA (accepted or not, half and half)."""
LEASE = 60.0
SEED = 5


class ProviderRefused(Exception):
    """The provider said no before taking the message: it was not sent."""


class _Provider:
    """A flaky provider that remembers what it actually delivered."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.delivered: dict[int, int] = {}

    def send(self, message: int) -> str:
        draw = self.rng.random()
        if draw < REFUSED:
            raise ProviderRefused(f"550 refused message {message}")
        if draw < REFUSED + DROPPED:
            if self.rng.random() < 0.5:
                self.deliver(message)
            raise TimeoutError(f"connection dropped after DATA for message {message}")
        self.deliver(message)
        return f"provider-{message}"

    def deliver(self, message: int) -> None:
        """The provider takes `message` (and will deliver it)."""
        self.delivered[message] = self.delivered.get(message, 0) + 1


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """What one run delivered, and what its records say (message numbers)."""

    messages: int
    deliveries: int
    """Times the provider took a message (a duplicate counts twice)."""
    delivered: frozenset[int]
    """Messages the provider took at least once (the truth nobody can query)."""
    in_doubt: frozenset[int]
    """Messages whose outcome was unknown at some point: dropped after DATA, or in flight
    when the workers were killed."""
    completed: frozenset[int]
    """Messages the ledger records as sent (empty unguarded: nothing records them)."""
    failed: frozenset[int]
    """Messages the ledger records as surely not sent (the next replay sends them)."""
    listed: frozenset[int]
    """Messages the ledger lists as unknown, for an operator."""

    @property
    def duplicates(self) -> int:
        """Deliveries beyond the first of each message."""
        return self.deliveries - len(self.delivered)

    @property
    def unaccounted(self) -> int:
        """Messages the records say nothing about (neither sent, failed nor listed)."""
        return self.messages - len(self.completed | self.failed | self.listed)


class _Run:
    def __init__(self, messages: int, guarded: bool) -> None:
        self.messages = messages
        self.clock = FakeClock()
        self.provider = _Provider(random.Random(SEED))
        self.ledger = (
            Ledger(
                MemoryLedgerStore(self.clock),
                name="sends",
                policy=LedgerPolicy(lease=LEASE),
                clock=self.clock,
                hooks=[],
            )
            if guarded
            else None
        )
        self.doubt: set[int] = set()

    def send(self, message: int) -> None:
        """One send, as a worker does it (through the ledger when guarded)."""
        if self.ledger is None:
            try:
                self.provider.send(message)
            except TimeoutError:
                self.doubt.add(message)
            except ProviderRefused:
                pass
            return
        try:
            with self.ledger.idempotent(f"send:{message}", payload={"message": message}) as call:
                if not call.replayed:
                    call.complete(self.provider.send(message))
        except TimeoutError:
            self.doubt.add(message)
        except (ProviderRefused, LedgerError):
            pass

    def killed_in_flight(self, message: int, handed_over: bool) -> None:
        """A worker dies mid-send: the provider may have the message, nothing is recorded."""
        self.doubt.add(message)
        if self.ledger is not None:
            attempt = Attempt(self.ledger, f"send:{message}", fingerprint({"message": message}))
            attempt.__enter__()  # begun, and never finished: the process is gone
        if handed_over:
            self.provider.deliver(message)

    def result(self) -> ReplayRun:
        states: dict[str, set[int]] = {"completed": set(), "failed": set(), "unknown": set()}
        if self.ledger is not None:
            self.ledger.unknowns(limit=self.messages)  # expired leases become unknown
            for message in range(self.messages):
                entry = self.ledger.get(f"send:{message}")
                if entry is not None and entry.state.value in states:
                    states[entry.state.value].add(message)
        counts = self.provider.delivered
        return ReplayRun(
            messages=self.messages,
            deliveries=sum(counts.values()),
            delivered=frozenset(counts),
            in_doubt=frozenset(self.doubt),
            completed=frozenset(states["completed"]),
            failed=frozenset(states["failed"]),
            listed=frozenset(states["unknown"]),
        )


def simulate_replay(*, guarded: bool, scale: float = 1.0) -> ReplayRun:
    """Send ``10,000 * scale`` messages, kill the workers partway, replay the whole batch."""
    messages = round(FULL_MESSAGES * scale)
    run = _Run(messages, guarded)
    kill = round(messages * KILLED_AT)
    for message in range(kill):
        run.send(message)
        run.clock.advance(0.01)
    for n, message in enumerate(range(kill, min(messages, kill + WORKERS))):
        run.killed_in_flight(message, handed_over=n % 2 == 0)
    run.clock.advance(15 * 60)  # the outage; the workers' leases run out
    for message in range(messages):  # the fallback replays the whole batch
        run.send(message)
        run.clock.advance(0.01)
    return run.result()


MESSAGES = Metric("messages", "messages in the batch", "msgs")
DELIVERIES = Metric("deliveries", "deliveries by the provider", "msgs")
DUPLICATES = Metric("duplicates", "duplicate deliveries", "msgs")
IN_DOUBT = Metric("in_doubt", "messages whose outcome was unknown", "msgs")
LISTED = Metric("listed", "in-doubt messages listed for an operator", "msgs")
UNLISTED = Metric("unlisted", "in-doubt messages nobody listed", "msgs")
UNACCOUNTED = Metric("unaccounted", "messages with no record (sent, failed, unknown)", "msgs")


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_replay(guarded=guarded, scale=scale)
    return {
        MESSAGES.key: run.messages,
        DELIVERIES.key: run.deliveries,
        DUPLICATES.key: run.duplicates,
        IN_DOUBT.key: len(run.in_doubt),
        LISTED.key: len(run.listed),
        UNLISTED.key: len(run.in_doubt - run.listed - run.completed - run.failed),
        UNACCOUNTED.key: run.unaccounted if guarded else None,
    }


DRILL = Drill(
    name="replay-duplicates",
    incident="workers killed mid-batch, then the whole batch replayed from a fallback (#5, #6)",
    metrics=(MESSAGES, DELIVERIES, DUPLICATES, IN_DOUBT, LISTED, UNLISTED, UNACCOUNTED),
    goals=(
        Goal.at_most(DUPLICATES, 0, "no duplicate deliveries ({bound})"),
        Goal.at_most(UNLISTED, 0, "every in-doubt message listed ({bound} missing)"),
        Goal.at_least(LISTED, 1, "the unknowns are listed (at least {bound})"),
        Goal.at_most(UNACCOUNTED, 0, "every message recorded as sent, failed or unknown"),
    ),
    replay=replay,
    headline=DUPLICATES.key,
    min_scale=0.05,
)
"""The ``replay-duplicates`` drill."""
