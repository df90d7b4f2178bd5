"""Drill ``traffic-burst``: ten times the normal traffic for a while (INCIDENTS.md #7).

The API's traffic comes from `CLIENTS` integrations, each with its own API key, sending
about `RATE` requests a second each. For `BURST` seconds after `CALM` seconds of that,
every one of them sends ten times as much (a retry loop, a batch import, a launch); then
traffic goes back to normal for `AFTER` seconds.

The server has finite capacity: `WORKERS` requests run at once on `CORES` CPUs, so a
request's work (`WORK`, about 40 ms) stretches once more than `CORES` run together; the
requests beyond `WORKERS` wait in a backlog of `BACKLOG`, and past that the server
answers 503 at once (the incident's "75 % of requests got 503"). It serves about 100
requests a second: five times the normal traffic, half the burst.

Unguarded, the burst fills the backlog: every admitted request waits behind it, the p95
climbs many times over, and the excess gets bare 503s. Guarded, the same app runs behind
the real `GuardMiddleware` with `BASELINE`: a limit per API key that normal traffic never
reaches, sized so that all the keys together stay well inside the server's capacity. The
excess of each client gets 429 with ``Retry-After`` before it reaches a worker, and what
is admitted stays as fast as when calm. Everything runs on simulated time.

Every key's limit windows start at the same instants, so keys over their limit are
admitted in step: the server sees small bursts of one request per limited key. With few
large clients (the default) that is absorbed; `simulate_burst(clients=20, rate=1.0,
policy=...)` shows what many small ones do.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass

from sendguard import Breaker, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.drills._asgi import Answer, ASGIApp, call
from sendguard.drills._base import Drill, Goal, Metric, Value, percentile, simulate
from sendguard.testing import FakeClock, set_testing

__all__ = ["BASELINE", "DRILL", "BurstRun", "Overloaded", "Sent", "Server", "replay"]

BASELINE = RoutePolicy(limits="10/second;400/minute", breaker=Breaker.rate(0.5, slow=2.0))
"""Every route, per API key: 10 a second and 400 a minute (the normal rate is 4 and 240)."""

CLIENTS = 5
RATE = 4.0
"""Requests a second per client when calm (the intervals vary by +-50 %)."""
BURST_FACTOR = 10.0
CALM, BURST, AFTER = 20.0, 30.0, 10.0
"""Seconds of normal traffic, of ten times that, and of normal traffic again (scale 1.0)."""
WORKERS, CORES, BACKLOG = 16, 4, 64
WORK = (0.03, 0.05)
"""CPU seconds one request needs (drawn uniformly)."""
SEED = 7


class Overloaded(Exception):
    """The server's backlog is full."""


class Server:
    """`workers` requests at a time on `cores` CPUs, a first-come backlog, 503 past it."""

    def __init__(self, workers: int, cores: int, backlog: int) -> None:
        self.workers = workers
        self.cores = cores
        self.backlog = backlog
        self.busy = 0
        self.peak_backlog = 0
        self._queue: deque[asyncio.Future[None]] = deque()

    async def run(self, work: float) -> None:
        """Do `work` CPU seconds on a worker, sharing the CPUs with the others running."""
        if self.busy < self.workers and not self._queue:
            self.busy += 1
        elif len(self._queue) >= self.backlog:
            raise Overloaded(f"backlog of {self.backlog} is full")
        else:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.append(waiter)
            self.peak_backlog = max(self.peak_backlog, len(self._queue))
            try:
                await waiter  # the worker is handed over by the request that leaves it
            except asyncio.CancelledError:
                if waiter in self._queue:
                    self._queue.remove(waiter)
                elif not waiter.cancelled():
                    self._leave()  # handed over just as the task was cancelled: pass it on
                raise
        try:
            await asyncio.sleep(work * max(1.0, self.busy / self.cores))
        finally:
            self._leave()

    def _leave(self) -> None:
        """Hand the worker to the first request waiting for one, else free it."""
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.busy -= 1


def build_app(server: Server, rng: random.Random) -> ASGIApp:
    """A Starlette API whose one route runs on `server`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def email(request: Request) -> JSONResponse:
        await server.run(rng.uniform(*WORK))
        return JSONResponse({"id": request.path_params["id"], "status": "sent"})

    async def overloaded(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    return Starlette(
        routes=[Route("/v1/emails/{id}", email)], exception_handlers={Overloaded: overloaded}
    )


@dataclass(frozen=True, slots=True)
class Timeline:
    """The phases of one run, in seconds from its start."""

    calm: float
    burst: float
    after: float

    @classmethod
    def at_scale(cls, scale: float) -> Timeline:
        """Every phase `scale` times as long as at full scale."""
        return cls(CALM * scale, BURST * scale, AFTER * scale)

    @property
    def end(self) -> float:
        """When the clients stop sending."""
        return self.calm + self.burst + self.after

    def phase(self, at: float) -> str:
        """``"calm"``, ``"burst"`` or ``"after"``."""
        if at < self.calm:
            return "calm"
        return "burst" if at < self.calm + self.burst else "after"

    def factor(self, at: float) -> float:
        """How many times the normal traffic is sent at `at`."""
        return BURST_FACTOR if self.phase(at) == "burst" else 1.0


@dataclass(frozen=True, slots=True)
class Sent:
    """One request: when it was sent (s from the start), its phase, and how it went."""

    start: float
    phase: str
    latency: float
    answer: Answer


@dataclass(frozen=True, slots=True)
class BurstRun:
    """Everything one run recorded."""

    timeline: Timeline
    sent: tuple[Sent, ...]
    peak_backlog: int

    def latencies(self, phase: str) -> list[float]:
        """Latencies of the requests of `phase` that were served (2xx)."""
        return [s.latency for s in self.sent if s.phase == phase and s.answer.status < 300]


def simulate_burst(
    *,
    guarded: bool,
    scale: float = 1.0,
    clients: int = CLIENTS,
    rate: float = RATE,
    policy: RoutePolicy = BASELINE,
) -> BurstRun:
    """Replay the burst once on simulated time, behind the guard (with `policy`) or not.

    `clients` sending `rate` requests a second each when calm (the defaults are the
    drill's) let other shapes of the same total traffic be tried.
    """
    timeline = Timeline.at_scale(scale)
    clock = FakeClock()
    t0 = clock.monotonic()
    rng = random.Random(SEED)
    server = Server(WORKERS, CORES, BACKLOG)
    app = build_app(server, random.Random(SEED + 1))
    if guarded:
        with set_testing():  # breaker jitter from a seeded generator: the same run every time
            app = GuardMiddleware(app, Guard(baseline=policy, clock=clock))
    sent: list[Sent] = []

    async def request(n: int, serial: int) -> None:
        start = clock.monotonic() - t0
        auth = [("authorization", f"Bearer client-{n}")]
        answer = await call(app, f"/v1/emails/{serial}", client=f"198.51.100.{n}", headers=auth)
        sent.append(Sent(start, timeline.phase(start), clock.monotonic() - t0 - start, answer))

    async def client(n: int, group: asyncio.TaskGroup) -> None:
        serial = 0
        await asyncio.sleep(rng.uniform(0, 1 / rate))
        while (now := clock.monotonic() - t0) < timeline.end:
            serial += 1
            group.create_task(request(n, 1000 * n + serial))  # open loop: clients don't wait
            await asyncio.sleep(rng.uniform(0.5, 1.5) / (rate * timeline.factor(now)))

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for n in range(clients):
                group.create_task(client(n, group))

    simulate(clock, main)
    return BurstRun(timeline, tuple(sent), server.peak_backlog)


SERVED = Metric("burst_served_pct", "burst requests served", "%", 1)
CALM_P95 = Metric("calm_p95_ms", "p95 of served requests when calm", "ms")
BURST_P95 = Metric("burst_p95_ms", "p95 of served requests in the burst", "ms")
P95_VS_CALM = Metric("p95_vs_calm", "served p95, burst / calm", "x", 2)
LIMITED = Metric("limited_429", "429 with Retry-After", "reqs")
ERRORS = Metric("errors_5xx", "5xx responses", "reqs")
BARE = Metric("bare_refusals", "429/503 without Retry-After", "reqs")
CALM_REFUSED = Metric("calm_refused", "refused before the burst", "reqs")
AFTER_REFUSED = Metric("after_refused", "refused after the burst", "reqs")
BACKLOG_PEAK = Metric("backlog_peak", "server backlog peak", "reqs")


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_burst(guarded=guarded, scale=scale)
    burst = [s for s in run.sent if s.phase == "burst"]
    calm_p95 = percentile(run.latencies("calm"), 0.95)
    burst_p95 = percentile(run.latencies("burst"), 0.95)
    unavailable = [s.answer for s in run.sent if s.answer.status in (429, 503)]
    return {
        SERVED.key: 100 * sum(s.answer.status < 300 for s in burst) / max(1, len(burst)),
        CALM_P95.key: None if calm_p95 is None else 1000 * calm_p95,
        BURST_P95.key: None if burst_p95 is None else 1000 * burst_p95,
        P95_VS_CALM.key: None if not calm_p95 or burst_p95 is None else burst_p95 / calm_p95,
        LIMITED.key: sum(a.status == 429 and a.retry_after is not None for a in unavailable),
        ERRORS.key: sum(s.answer.status >= 500 for s in run.sent),
        BARE.key: sum(not a.refused for a in unavailable),
        CALM_REFUSED.key: sum(s.phase == "calm" and s.answer.status >= 400 for s in run.sent),
        AFTER_REFUSED.key: sum(s.phase == "after" and s.answer.status >= 400 for s in run.sent),
        BACKLOG_PEAK.key: run.peak_backlog,
    }


METRICS = (
    SERVED, CALM_P95, BURST_P95, P95_VS_CALM, LIMITED,
    ERRORS, BARE, CALM_REFUSED, AFTER_REFUSED, BACKLOG_PEAK,
)  # fmt: skip


DRILL = Drill(
    name="traffic-burst",
    incident="ten times the normal traffic outruns the servers; requests get 503s (#7)",
    metrics=METRICS,
    goals=(
        Goal.at_most(P95_VS_CALM, 2, "served requests keep their p95 within {bound}x of calm"),
        Goal.at_least(LIMITED, 1, "the excess gets 429 with Retry-After"),
        Goal.at_most(BARE, 0, "no refusal without Retry-After"),
        Goal.at_most(ERRORS, 0, "nothing gets a 5xx"),
        Goal.at_most(CALM_REFUSED, 0, "normal traffic is never refused"),
    ),
    replay=replay,
    headline=P95_VS_CALM.key,
    min_scale=0.25,
)
"""The ``traffic-burst`` drill."""
