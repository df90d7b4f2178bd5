"""Drill ``polling-storm``: open modals poll an expensive route through an outage (INCIDENTS.md #1).

`FULL_MODALS` users have a web app's analytics modal open; each wants fresh figures
every `EVERY` seconds from one route served by `FULL_WORKERS` workers, first come first
served (a smaller scale has proportionally fewer of both).
Thirty seconds in, the route gets expensive (its figures are computed in band: each
request takes `SICK_SERVICE` seconds instead of `HEALTHY_SERVICE`); at `ROUTE_BACK` it
is fast again. Clients give up on a request after `CLIENT_TIMEOUT` seconds, but the
route still does the work of every request it has queued (nothing tells it the client
has gone), as in the incident. All of it runs on simulated time and repeats exactly.

Unguarded, each modal polls the way a UI timer does (``setInterval``): a request every
`EVERY` seconds whatever became of the last one. Requests pile up in the route's queue
during the storm, and once the route is back it spends the better part of a minute
working through requests whose clients gave up long ago while fresh ones wait behind
them. Guarded, each modal polls with `sendguard.backoff.apoll`: one request at a time,
with jittered exponential backoff (from `EVERY` to `MAX_INTERVAL`) after every failed
or timed-out poll; after a good answer it polls again `EVERY` seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import random
from dataclasses import dataclass, field

from sendguard.backoff import PollTimeout, apoll
from sendguard.drills._base import Drill, Goal, Metric, Value, simulate
from sendguard.testing import FakeClock, LoopClock

__all__ = ["DRILL", "Route", "StormRun", "replay", "simulate_storm"]

FULL_MODALS = 300
"""Open modals at scale 1.0 (a smaller scale has fewer modals and fewer workers)."""
FULL_WORKERS = 8
EVERY = 3.0
"""Seconds between two polls of one modal (the modal's refresh interval)."""
MAX_INTERVAL = 30.0
"""The longest wait between two polls of a guarded modal."""
POLL_DEADLINE = 120.0
"""A guarded modal's poll gives up (shows "analytics unavailable") after this long."""
CLIENT_TIMEOUT = 10.0
HEALTHY_SERVICE = 0.04
"""Seconds a worker needs for one request while the route is healthy (200 a second)."""
SICK_SERVICE = 1.0
"""Seconds per request while figures are computed in band (8 a second at full scale)."""
STORM_START, ROUTE_BACK, END = 30.0, 90.0, 240.0
"""Seconds into the run when the route gets expensive, when it is fast again, and the end."""
SLOW_QUEUE = 1.0
"""A request that waits this long in the queue means the route is still backed up."""
SEED = 11


@dataclass(slots=True)
class Route:
    """The analytics route: `workers` workers take requests first come, first served."""

    workers: int
    free_at: list[float] = field(default_factory=list)
    served: list[tuple[float, float, float]] = field(default_factory=list)
    """(arrival, start, end) of every request, in arrival order."""

    def __post_init__(self) -> None:
        self.free_at = [0.0] * self.workers

    def admit(self, arrival: float) -> float:
        """Queue a request arriving at `arrival`; return when its answer is sent."""
        start = max(arrival, heapq.heappop(self.free_at))
        sick = STORM_START <= start < ROUTE_BACK
        end = start + (SICK_SERVICE if sick else HEALTHY_SERVICE)
        heapq.heappush(self.free_at, end)
        self.served.append((arrival, start, end))
        return end


@dataclass(frozen=True, slots=True)
class Answer:
    """What the route answers (only ``status_code`` and ``headers`` matter to a poller)."""

    status_code: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class StormRun:
    """Everything one run recorded, in seconds from its start."""

    route: Route
    fresh: dict[int, float] = field(default_factory=dict)
    """Per modal: when it first got figures asked for after the route came back."""
    sent: list[float] = field(default_factory=list)

    def requests_in_storm(self) -> int:
        """Requests sent while the route was expensive."""
        return sum(STORM_START <= t < ROUTE_BACK for t in self.sent)

    def wasted(self) -> int:
        """Requests the route worked on after their client had given up."""
        return sum(end - arrival > CLIENT_TIMEOUT for arrival, _, end in self.route.served)

    def peak_queue(self) -> int:
        """The most requests waiting for a worker at once."""
        events = sorted(
            [(a, 1) for a, s, _ in self.route.served if s > a]
            + [(s, -1) for a, s, _ in self.route.served if s > a]
        )
        depth = peak = 0
        for _, step in events:
            depth += step
            peak = max(peak, depth)
        return peak

    def time_to_recover(self) -> float:
        """Route back to the last request that still queued `SLOW_QUEUE` s or more."""
        late = [a for a, s, _ in self.route.served if a >= ROUTE_BACK and s - a >= SLOW_QUEUE]
        return max(late) - ROUTE_BACK if late else 0.0

    def time_to_fresh(self, modals: int, share: float = 0.95) -> float | None:
        """Route back until `share` of the modals showed figures asked for after it."""
        times = sorted(self.fresh.values())
        need = math.ceil(share * modals)
        return times[need - 1] - ROUTE_BACK if len(times) >= need else None


def _modals(scale: float) -> tuple[int, int]:
    return max(1, round(FULL_MODALS * scale)), max(1, round(FULL_WORKERS * scale))


class _Storm:
    """One run's modals and route on a simulated clock."""

    def __init__(self, clock: FakeClock, scale: float) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.modals, workers = _modals(scale)
        self.run = StormRun(Route(workers))
        self.rng = random.Random(SEED)

    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    def _record(self, modal: int, sent: float, answered: float) -> None:
        if sent >= ROUTE_BACK and modal not in self.run.fresh:
            self.run.fresh[modal] = answered

    async def fetch(self, modal: int) -> Answer:
        """One request, awaited: the answer, or `TimeoutError` after `CLIENT_TIMEOUT`."""
        sent = self.now()
        self.run.sent.append(sent)
        wait = self.run.route.admit(sent) - sent
        if wait > CLIENT_TIMEOUT:
            await asyncio.sleep(CLIENT_TIMEOUT)
            raise TimeoutError("the analytics request timed out")
        await asyncio.sleep(wait)
        self._record(modal, sent, sent + wait)
        return Answer()

    def fire(self, modal: int) -> None:
        """One request sent by a timer that does not wait for it (the unguarded modal)."""
        sent = self.now()
        self.run.sent.append(sent)
        answered = self.run.route.admit(sent)
        if answered - sent <= CLIENT_TIMEOUT:
            self._record(modal, sent, answered)

    async def naive(self, modal: int) -> None:
        await asyncio.sleep(self.rng.uniform(0, EVERY))
        while self.now() < END:
            self.fire(modal)
            await asyncio.sleep(EVERY)

    async def guarded(self, modal: int) -> None:
        rng = random.Random(SEED * 1000 + modal)
        await asyncio.sleep(self.rng.uniform(0, EVERY))
        while self.now() < END:
            # A poll that times out leaves the modal saying "analytics unavailable"; it
            # tries again a refresh later.
            with contextlib.suppress(PollTimeout):
                await apoll(
                    lambda: self.fetch(modal),
                    until=lambda answer: answer.status_code == 200,
                    every=EVERY,
                    max_interval=MAX_INTERVAL,
                    deadline=POLL_DEADLINE,
                    name="analytics-modal",
                    clock=LoopClock(self.clock),
                    hooks=[],
                    rng=rng,
                )
            await asyncio.sleep(EVERY)

    async def main(self, guarded: bool) -> None:
        async with asyncio.TaskGroup() as group:
            for modal in range(self.modals):
                group.create_task(self.guarded(modal) if guarded else self.naive(modal))


def simulate_storm(*, guarded: bool, scale: float = 1.0) -> StormRun:
    """Replay the storm once on simulated time and record everything."""
    clock = FakeClock()
    storm = _Storm(clock, scale)
    simulate(clock, lambda: storm.main(guarded))
    return storm.run


STORM_REQUESTS = Metric("storm_requests", "requests sent during the storm", "reqs")
PEAK_QUEUE = Metric("peak_queue", "most requests queued at the route", "reqs")
WASTED = Metric("wasted", "requests served after the client gave up", "reqs")
RECOVER = Metric("recover_s", "time to recover once the route returns", "s", digits=1)
FRESH = Metric("fresh_s", "time until 95 % of modals show fresh figures", "s", digits=1)


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_storm(guarded=guarded, scale=scale)
    modals, _ = _modals(scale)
    return {
        STORM_REQUESTS.key: run.requests_in_storm(),
        PEAK_QUEUE.key: run.peak_queue(),
        WASTED.key: run.wasted(),
        RECOVER.key: run.time_to_recover(),
        FRESH.key: run.time_to_fresh(modals),
    }


DRILL = Drill(
    name="polling-storm",
    incident="open modals keep polling an expensive route through an outage (#1)",
    metrics=(STORM_REQUESTS, PEAK_QUEUE, WASTED, RECOVER, FRESH),
    goals=(
        Goal.at_most(
            STORM_REQUESTS,
            lambda scale: 5 * _modals(scale)[0],
            "at most {bound} requests during the storm (5 per modal)",
        ),
        Goal.at_most(
            WASTED,
            lambda scale: 5 * _modals(scale)[0],
            "at most {bound} requests served in vain (5 per modal)",
        ),
        Goal.at_most(RECOVER, 5, "route recovered within {bound} s of returning"),
        Goal.at_most(FRESH, 30, "95 % of modals fresh within {bound} s of the route returning"),
    ),
    replay=replay,
    headline=RECOVER.key,
    min_scale=0.25,
)
"""The ``polling-storm`` drill."""
