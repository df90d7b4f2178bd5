"""Drill ``analytics-storm``: an expensive route polled without backoff (INCIDENTS.md #1, #8).

A Starlette app serves a cheap public archive (``GET /archive/{slug}``) and an expensive
analytics endpoint (``GET /v1/emails/{id}/analytics``). Both run their query on one of a
small pool of `POOL_SIZE` simulated database connections: an archive page holds one for
about 20 ms, the analytics computation for about 2 s, and both slow down as the database
gets busier. A request that cannot get a connection within `POOL_TIMEOUT` fails with a
500, as the framework would.

For `CALM` seconds only readers fetch archives (a steady `READ_RATE` a second from many
addresses). Then, for `STORM` seconds, `POLLERS` browser modals also poll the analytics
of their email, each with its own API key, once a second after each answer, success or
not, never backing off and never reading ``Retry-After`` (the errant code path of the
incident).

Unguarded, the pollers take every connection and queue for more; archive requests wait
behind them until they time out. Guarded, the app runs behind the real `GuardMiddleware`
with `BASELINE` and `ROUTES` (the policy of the README): analytics gets a stricter limit
per key, a bulkhead of four and a breaker that trips on slow calls, so it is shed with
429/503 and ``Retry-After`` while archives keep their connections. Everything runs on
simulated time (`sendguard.drills.simulate`), so a minute and a half of traffic takes
about a second and gives the same figures on every run.

The helpers `call`, `Answer` and `percentile` drive any ASGI app in-process; the
``traffic-burst`` drill uses them too.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sendguard import Breaker, Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.drills._asgi import Answer, ASGIApp, call
from sendguard.drills._base import Drill, Goal, Metric, Value, percentile, simulate
from sendguard.testing import FakeClock, set_testing

__all__ = [
    "BASELINE",
    "DRILL",
    "ROUTES",
    "ConnectionPool",
    "PoolTimeout",
    "Record",
    "StormRun",
    "replay",
    "simulate_storm",
]

ANALYTICS = "GET /v1/emails/{id}/analytics"
BASELINE = RoutePolicy(limits="120/minute;10/second", breaker=Breaker.rate(0.5, slow=2.0))
"""Every route: a baseline limit per key, and a breaker on errors and 2 s calls."""
ROUTES = {
    ANALYTICS: RoutePolicy(
        limits="20/minute",
        bulkhead=Bulkhead(4, max_wait=0.05),
        breaker=Breaker.rate(0.25, slow=0.5),
    ),
}
"""Analytics: 20 a minute per key, four at a time, and a breaker on 0.5 s calls (#8)."""

POOL_SIZE = 10
POOL_TIMEOUT = 1.0
"""Seconds a request waits for a database connection before failing with a 500."""
ARCHIVE_QUERY = (0.015, 0.025)
ANALYTICS_QUERY = (1.8, 2.2)
"""Seconds a query holds its connection on an idle database (drawn uniformly)."""
CONTENTION = 0.05
"""Each other connection in use makes a query this much slower (0.05: 5 %)."""
CALM, STORM = 20.0, 60.0
"""Seconds of readers only, then seconds of readers and pollers."""
READ_RATE = 40.0
"""Archive requests a second at scale 1.0 (a smaller scale sends fewer)."""
READERS = 500
"""Distinct reader addresses."""
POLLERS = 24
POLL_INTERVAL = 1.0
"""Seconds a poller waits after each answer before polling again (no backoff)."""
SEED = 1


# --- the app -------------------------------------------------------------------------


class PoolTimeout(Exception):
    """No database connection came within the pool's timeout."""


class ConnectionPool:
    """`size` simulated connections; waiters are served first come, first served."""

    def __init__(self, size: int, timeout: float, clock: FakeClock) -> None:
        self.size = size
        self.timeout = timeout
        self.clock = clock
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.waits: list[tuple[float, float]] = []
        """(when the wait began, seconds waited) per acquisition, timeouts included."""

    def _expire(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._waiters.remove(waiter)
            waiter.set_exception(PoolTimeout(f"no connection within {self.timeout:g} s"))

    async def acquire(self) -> None:
        """Take a connection, waiting up to `timeout`; `PoolTimeout` if none came."""
        start = self.clock.monotonic()
        if self.in_use < self.size and not self._waiters:
            self.in_use += 1
            self.waits.append((start, 0.0))
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(self.timeout, self._expire, waiter)
        try:
            await waiter  # a releasing request hands its connection over (in_use unchanged)
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif not waiter.cancelled():
                self.release()  # handed over just as the task was cancelled: pass it on
            raise
        finally:
            timer.cancel()
            self.waits.append((start, self.clock.monotonic() - start))

    def release(self) -> None:
        """Give a connection back: to the first waiter, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_use -= 1

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[float]:
        """Hold a connection; yields how much slower than idle the database runs now."""
        await self.acquire()
        try:
            yield 1.0 + CONTENTION * (self.in_use - 1)
        finally:
            self.release()


def build_app(pool: ConnectionPool, rng: random.Random) -> ASGIApp:
    """The Starlette app: a cheap archive and an expensive analytics route on `pool`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def query(span: tuple[float, float]) -> None:
        async with pool.connection() as slowdown:
            await asyncio.sleep(rng.uniform(*span) * slowdown)

    async def archive(request: Request) -> JSONResponse:
        await query(ARCHIVE_QUERY)
        return JSONResponse({"slug": request.path_params["slug"]})

    async def analytics(request: Request) -> JSONResponse:
        await query(ANALYTICS_QUERY)
        return JSONResponse({"email": request.path_params["id"], "opens": 1})

    async def pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=500)

    return Starlette(
        routes=[
            Route("/archive/{slug}", archive),
            Route("/v1/emails/{id}/analytics", analytics),
        ],
        exception_handlers={PoolTimeout: pool_exhausted},
    )


# --- one run -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One request: which route, when it was sent (s from the start), how it went."""

    route: str
    """``"archive"`` or ``"analytics"``."""
    start: float
    latency: float
    answer: Answer


@dataclass(frozen=True, slots=True)
class StormRun:
    """Everything one run recorded."""

    records: tuple[Record, ...]
    pool_waits: tuple[tuple[float, float], ...]
    """(seconds from the start, seconds waited) per connection acquisition."""

    def archives(self, *, storm: bool) -> list[Record]:
        """Archive requests sent during the storm (or before it)."""
        return [r for r in self.records if r.route == "archive" and (r.start >= CALM) == storm]

    def analytics(self) -> list[Record]:
        """Every analytics request."""
        return [r for r in self.records if r.route == "analytics"]


def _readers(scale: float, rng: random.Random) -> list[tuple[float, str, str]]:
    """(arrival, address, path) of every archive request: Poisson arrivals."""
    rate, end, at = READ_RATE * scale, CALM + STORM, 0.0
    found: list[tuple[float, str, str]] = []
    while (at := at + rng.expovariate(rate)) < end:
        reader = rng.randrange(READERS)
        found.append((at, f"10.1.{reader // 250}.{reader % 250}", f"/archive/issue-{reader}"))
    return found


def simulate_storm(*, guarded: bool, scale: float = 1.0) -> StormRun:
    """Replay the storm once on simulated time, behind the guard or not."""
    clock = FakeClock()
    t0 = clock.monotonic()
    rng = random.Random(SEED)
    pool = ConnectionPool(POOL_SIZE, POOL_TIMEOUT, clock)
    app = build_app(pool, random.Random(SEED + 1))
    if guarded:
        with set_testing():  # breaker jitter from a seeded generator: the same run every time
            app = GuardMiddleware(app, Guard(baseline=BASELINE, routes=ROUTES, clock=clock))
    records: list[Record] = []
    end = CALM + STORM

    async def request(route: str, path: str, client: str, key: str | None = None) -> None:
        start = clock.monotonic() - t0
        headers = [("authorization", f"Bearer {key}")] if key else []
        answer = await call(app, path, client=client, headers=headers)
        records.append(Record(route, start, clock.monotonic() - t0 - start, answer))

    async def poller(n: int) -> None:
        await asyncio.sleep(CALM + n / POLLERS)
        while clock.monotonic() - t0 < end:
            path = f"/v1/emails/{1000 + n}/analytics"
            await request("analytics", path, f"203.0.113.{n}", f"key-{n}")
            await asyncio.sleep(POLL_INTERVAL)

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for n in range(POLLERS):
                group.create_task(poller(n))
            for at, client, path in _readers(scale, rng):
                await asyncio.sleep(max(0.0, at - (clock.monotonic() - t0)))
                group.create_task(request("archive", path, client))

    simulate(clock, main)
    waits = tuple((when - t0, waited) for when, waited in pool.waits)
    return StormRun(tuple(records), waits)


# --- figures -------------------------------------------------------------------------

ARCHIVE_OK = Metric("archive_ok_pct", "archive success in the storm", "%", 1)
ARCHIVE_P50 = Metric("archive_p50_ms", "archive p50 in the storm", "ms")
ARCHIVE_P95 = Metric("archive_p95_ms", "archive p95 in the storm", "ms")
CALM_P95 = Metric("calm_p95_ms", "archive p95 when calm", "ms")
P95_VS_CALM = Metric("p95_vs_calm", "archive p95, storm / calm", "x", 2)
SERVED = Metric("analytics_served", "analytics served", "reqs")
LIMITED = Metric("analytics_429", "analytics shed with 429 (limit)", "reqs")
SHED = Metric("analytics_503", "analytics shed with 503 (breaker, bulkhead)", "reqs")
ERRORS = Metric("errors_500", "500 errors, all routes", "reqs")
RETRY_AFTER = Metric("retry_after_pct", "429/503 with Retry-After", "%", 1)
POOL_WAIT = Metric("pool_wait_p95_ms", "pool wait p95 in the storm", "ms")


def _ms(seconds: float | None) -> Value:
    return None if seconds is None else 1000 * seconds


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_storm(guarded=guarded, scale=scale)
    storm = run.archives(storm=True)
    storm_latency = [r.latency for r in storm]
    calm_p95 = percentile([r.latency for r in run.archives(storm=False)], 0.95)
    storm_p95 = percentile(storm_latency, 0.95)
    analytics = run.analytics()
    unavailable = [r for r in run.records if r.answer.status in (429, 503)]
    waits = [w for when, w in run.pool_waits if when >= CALM]
    return {
        ARCHIVE_OK.key: 100 * sum(r.answer.status == 200 for r in storm) / max(1, len(storm)),
        ARCHIVE_P50.key: _ms(percentile(storm_latency, 0.50)),
        ARCHIVE_P95.key: _ms(storm_p95),
        CALM_P95.key: _ms(calm_p95),
        P95_VS_CALM.key: None if not calm_p95 or storm_p95 is None else storm_p95 / calm_p95,
        SERVED.key: sum(r.answer.status == 200 for r in analytics),
        LIMITED.key: sum(r.answer.refused and r.answer.status == 429 for r in analytics),
        SHED.key: sum(r.answer.refused and r.answer.status == 503 for r in analytics),
        ERRORS.key: sum(r.answer.status >= 500 and not r.answer.refused for r in run.records),
        RETRY_AFTER.key: (
            100 * sum(r.answer.refused for r in unavailable) / len(unavailable)
            if unavailable
            else None
        ),
        POOL_WAIT.key: _ms(percentile(waits, 0.95)),
    }


METRICS = (
    ARCHIVE_OK, ARCHIVE_P50, ARCHIVE_P95, CALM_P95, P95_VS_CALM, SERVED,
    LIMITED, SHED, ERRORS, RETRY_AFTER, POOL_WAIT,
)  # fmt: skip


DRILL = Drill(
    name="analytics-storm",
    incident="an expensive analytics route polled without backoff tramples the archives (#1, #8)",
    metrics=METRICS,
    goals=(
        Goal.at_least(ARCHIVE_OK, 99, "archives keep at least {bound} % success"),
        Goal.at_most(P95_VS_CALM, 2, "archive p95 within {bound}x of calm"),
        Goal.at_least(SHED, 1, "analytics is shed with 503 once its calls turn slow"),
        Goal.at_least(RETRY_AFTER, 100, "every 429/503 carries Retry-After"),
        Goal.at_most(ERRORS, 0, "no 500 errors"),
    ),
    replay=replay,
    headline=ARCHIVE_OK.key,
    min_scale=0.25,
)
"""The ``analytics-storm`` drill."""
