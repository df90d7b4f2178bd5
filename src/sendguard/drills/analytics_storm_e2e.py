"""Drill ``analytics-storm-e2e``: the analytics storm, for real, over the pipeline's API (#1).

The reference pipeline's API (`sendguard.pipeline`, embedded: SQLite records) is served
by a real uvicorn server on a free loopback port, in a process of its own, with one big
email already sent to `RECIPIENTS` readers and `ISSUES` smaller ones in the public
archive. Real HTTP clients (httpx) then load it, in real time:

- readers fetch ``GET /archive/{slug}`` throughout, `READ_RATE` a second at scale 1.0
  (Poisson arrivals from a seeded generator), each from its own address (sent as
  ``X-Forwarded-For``, which uvicorn believes from loopback), giving up after
  `READ_TIMEOUT`;
- after `CALM` seconds, `POLLERS` browser modals also poll ``GET
  /v1/emails/{id}/analytics`` of the big email, each with its own API key, for `STORM`
  seconds.

Unguarded: the API as it was before the incident (`create_app(..., unguarded=True)`): no
middleware, and the analytics computed in band on every request, a grouped count over
the big email's deliveries that holds the records' one SQLite connection while it runs.
Each modal polls like a UI timer with no backoff: a request every `EVERY` seconds
whatever became of the last one (each given up after `POLL_TIMEOUT`; the server still
computes it). The archive pages wait behind the analytics for the connection and for
the server's threads.

Guarded: the pipeline as built (`Pipeline.serve`): analytics precomputed by the cron
job (one run before the traffic) and only read by the route, behind the guard (a
baseline limit per client, and on analytics a stricter limit, `ANALYTICS_LIMITS` per
key, a bulkhead and a slow-call breaker). Each modal polls with
`sendguard.backoff.apoll`: one request at a time, backing off on 429 and 5xx, and
honouring ``Retry-After``; after each answer it waits `EVERY` seconds.

This drill runs in real time on a real server, so its figures vary from run to run, and
the targets leave room for that. An archive page takes a few milliseconds here, where a
busy two-core machine's scheduling alone can double a p95 between two runs of the same
traffic; so the storm's archive p95 is compared with the calm one or `LATENCY_FLOOR`
(20 ms), whichever is higher. Unguarded, the storm's p95 is the readers' timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sendguard.drills._base import Drill, Goal, Metric, Value, percentile

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DRILL",
    "Record",
    "Served",
    "StormRun",
    "figures",
    "replay",
    "run_storm",
    "serve_pipeline",
]

RECIPIENTS = 60_000
"""Deliveries of the big email (computing its analytics in band takes ~30 ms)."""
ISSUES = 20
"""Smaller emails, whose archive pages the readers fetch."""
READ_RATE = 80.0
"""Archive requests a second at scale 1.0."""
READERS = 500
READ_TIMEOUT = 1.0
"""Seconds a reader waits for an archive page before giving up (a failure)."""
POLLERS = 40
EVERY = 0.5
"""Seconds between two polls of one modal."""
POLL_TIMEOUT = 1.0
MAX_INTERVAL = 5.0
"""The longest a guarded poller backs off."""
ANALYTICS_LIMITS = "60/minute;1/second"
"""The guarded API's limit on analytics, per API key (a modal polls every `EVERY` s)."""
WARMUP, CALM, STORM = 0.3, 1.0, 2.5
"""Seconds of readers not measured (connections open), then readers only, then the storm."""
LATENCY_FLOOR = 0.020
"""The storm's archive p95 is compared with the calm one or this, whichever is higher."""
SEED = 1

_CHILD = "import sys; from sendguard.drills.analytics_storm_e2e import _child; _child(sys.argv[1:])"


# --- the server, in a process of its own --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Served:
    """The pipeline's API as served for one run."""

    url: str
    email_id: int
    """The big email, whose analytics the modals poll."""
    slugs: tuple[str, ...]
    """Archive slugs the readers fetch."""


@contextlib.contextmanager
def serve_pipeline(*, unguarded: bool, recipients: int = RECIPIENTS) -> Iterator[Served]:
    """Serve the pipeline's API, with the drill's data, from this process for as long as
    the context lasts (the drill runs it in a child process)."""
    from sendguard.pipeline import (
        DeliveryState,
        Pipeline,
        PipelineConfig,
        ProviderConfig,
        SinkServer,
        create_app,
    )

    with SinkServer("primary") as sink:  # the provider the big email went through
        config = PipelineConfig(
            providers=(ProviderConfig("primary", sink.host, sink.port),),
            worker_threads=0,  # the API only: nothing is sent in this drill
            analytics_limits=ANALYTICS_LIMITS,
        )
        with Pipeline(config, cron=False) as pipeline:
            big = pipeline.create_email("The big one", "Hello!\n\nOur biggest issue yet.")
            readers = pipeline.create_list("everyone", recipients)
            queued = pipeline.records.queue_deliveries(big.id, readers.id)
            sent = [(rid, DeliveryState.SENT, "primary", "sent") for rid in queued]
            pipeline.records.record(big.id, sent)
            slugs = [
                pipeline.create_email(f"Issue {n}", f"Issue {n}.\n\nIn brief.").slug
                for n in range(ISSUES)
            ]
            if unguarded:  # the API before the incident, in place of the guarded one
                pipeline.app = create_app(
                    config, pipeline.records, pipeline.queue, pipeline.health, unguarded=True
                )
            else:
                pipeline.refresh_analytics()  # what the cron job does, every few seconds
            url = pipeline.serve()
            yield Served(url, big.id, tuple(slugs))


def _child(argv: list[str]) -> None:
    """The server process: serve, print where as one JSON line, stop when stdin closes."""
    unguarded, recipients = argv[0] == "unguarded", int(argv[1])
    with serve_pipeline(unguarded=unguarded, recipients=recipients) as served:
        where = {"url": served.url, "email_id": served.email_id, "slugs": served.slugs}
        print(json.dumps(where), flush=True)
        sys.stdin.read()
        if unguarded:  # analytics requests whose clients left long ago are still computing
            os._exit(0)


@contextlib.contextmanager
def _served(*, unguarded: bool) -> Iterator[Served]:
    """The server process for one run; stopped (killed if need be) on exit."""
    mode = "unguarded" if unguarded else "guarded"
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, mode, str(RECIPIENTS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            line = child.stdout.readline()
            if not line:
                child.wait(10)
                errors.seek(0)
                raise RuntimeError(f"the pipeline's API did not start:\n{errors.read()}")
            data = json.loads(line)
            yield Served(data["url"], int(data["email_id"]), tuple(data["slugs"]))
        finally:
            child.stdin.close()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child.stdout.close()


# --- the clients ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One request: its route, when it was sent (s from the start of the calm), how it went."""

    route: str
    """``"archive"`` or ``"analytics"``."""
    start: float
    latency: float
    status: int
    """The HTTP status; 0 when the client gave up (its timeout) or could not connect."""
    retry_after: str | None = None
    modal: int | None = None
    """The polling modal's number (None for a reader)."""


@dataclass(frozen=True, slots=True)
class StormRun:
    """Everything one run recorded."""

    records: tuple[Record, ...]

    def archives(self, *, storm: bool) -> list[Record]:
        """Archive requests sent during the storm (or before it)."""
        return [r for r in self.records if r.route == "archive" and (r.start >= CALM) == storm]

    def analytics(self) -> list[Record]:
        """Every analytics request."""
        return [r for r in self.records if r.route == "analytics"]


async def _traffic(served: Served, *, guarded: bool, scale: float) -> list[Record]:
    import httpx

    from sendguard.backoff import PollTimeout, apoll

    records: list[Record] = []
    rng = random.Random(SEED)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=200)
    readers = httpx.AsyncClient(base_url=served.url, limits=limits, timeout=READ_TIMEOUT)
    pollers = httpx.AsyncClient(base_url=served.url, limits=limits, timeout=POLL_TIMEOUT)
    t0 = 0.0
    end = CALM + STORM

    def now() -> float:
        return time.monotonic() - t0

    async def get(
        client: httpx.AsyncClient,
        route: str,
        path: str,
        headers: dict[str, str],
        modal: int | None = None,
    ) -> httpx.Response | None:
        start = now()
        try:
            answer: httpx.Response | None = await client.get(path, headers=headers)
        except httpx.TransportError:  # timed out (given up), or the connection failed
            answer = None
        status = 0 if answer is None else answer.status_code
        retry = None if answer is None else answer.headers.get("retry-after")
        if start >= 0:  # not a warm-up request
            records.append(Record(route, start, now() - start, status, retry, modal))
        return answer

    def read(n: int) -> asyncio.Task[httpx.Response | None]:
        headers = {"X-Forwarded-For": f"198.51.{100 + n // 250}.{n % 250}"}
        path = f"/archive/{served.slugs[n % len(served.slugs)]}"
        return asyncio.create_task(get(readers, "archive", path, headers))

    async def modal(n: int) -> None:
        path = f"/v1/emails/{served.email_id}/analytics"
        headers = {"Authorization": f"Bearer modal-{n}"}
        await asyncio.sleep(max(0.0, CALM + n * EVERY / POLLERS - now()))
        timers: list[asyncio.Task[httpx.Response | None]] = []
        while now() < end:
            if not guarded:  # a UI timer: poll every EVERY seconds, whatever happened
                timers.append(asyncio.create_task(get(pollers, "analytics", path, headers, n)))
            else:
                try:
                    await apoll(
                        lambda: get(pollers, "analytics", path, headers, n),
                        until=lambda answer: answer is not None and answer.status_code == 200,
                        every=EVERY,
                        max_interval=MAX_INTERVAL,
                        deadline=max(0.01, end - now()),
                    )
                except PollTimeout:
                    break
            await asyncio.sleep(EVERY)
        await asyncio.gather(*timers)

    try:
        t0 = time.monotonic() + WARMUP  # warm-up requests start before 0 and are not kept
        modals = [asyncio.create_task(modal(n)) for n in range(POLLERS)]
        reads: list[asyncio.Task[httpx.Response | None]] = []
        at = -WARMUP
        while (at := at + rng.expovariate(READ_RATE * scale)) < end:
            await asyncio.sleep(max(0.0, at - now()))
            reads.append(read(rng.randrange(READERS)))
        await asyncio.gather(*modals, *reads)
    finally:
        await readers.aclose()
        await pollers.aclose()
    return records


def run_storm(*, guarded: bool, scale: float = 1.0) -> StormRun:
    """One run on a fresh server: the pipeline as built (`guarded`) or the bare API."""
    for needed in ("httpx", "uvicorn", "starlette", "aiosmtpd", "rq"):  # before the server
        if importlib.util.find_spec(needed) is None:
            raise ModuleNotFoundError(f"No module named {needed!r}", name=needed)
    with _served(unguarded=not guarded) as served:
        records = asyncio.run(_traffic(served, guarded=guarded, scale=scale))
    return StormRun(tuple(records))


# --- figures ------------------------------------------------------------------------------

ARCHIVE_OK = Metric("archive_ok_pct", "archive success in the storm", "%", 1)
ARCHIVE_P50 = Metric("archive_p50_ms", "archive p50 in the storm", "ms")
ARCHIVE_P95 = Metric("archive_p95_ms", "archive p95 in the storm", "ms")
CALM_P95 = Metric("calm_p95_ms", "archive p95 when calm", "ms")
P95_VS_CALM = Metric("p95_vs_calm", "archive p95, storm / calm (20 ms floor)", "x", 2)
SERVED = Metric("analytics_served", "analytics served", "reqs")
LIMITED = Metric("analytics_429", "analytics shed with 429", "reqs")
SHED = Metric("analytics_503", "analytics shed with 503", "reqs")
GAVE_UP = Metric("analytics_failed", "analytics polls with no answer", "reqs")
ERRORS = Metric("errors_500", "500 errors, all routes", "reqs")
POLL_RATE = Metric("poll_rate", "poller requests a second", "req/s", 1)


def _ms(seconds: float | None) -> Value:
    return None if seconds is None else 1000 * seconds


def figures(run: StormRun) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    storm = run.archives(storm=True)
    latency = [r.latency for r in storm]
    calm_p95 = percentile([r.latency for r in run.archives(storm=False)], 0.95)
    storm_p95 = percentile(latency, 0.95)
    analytics = run.analytics()
    statuses: dict[int, int] = {}
    for r in analytics:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {
        ARCHIVE_OK.key: 100 * sum(r.status == 200 for r in storm) / max(1, len(storm)),
        ARCHIVE_P50.key: _ms(percentile(latency, 0.50)),
        ARCHIVE_P95.key: _ms(storm_p95),
        CALM_P95.key: _ms(calm_p95),
        P95_VS_CALM.key: (
            None
            if calm_p95 is None or storm_p95 is None
            else storm_p95 / max(calm_p95, LATENCY_FLOOR)
        ),
        SERVED.key: statuses.get(200, 0),
        LIMITED.key: statuses.get(429, 0),
        SHED.key: statuses.get(503, 0),
        GAVE_UP.key: statuses.get(0, 0),
        ERRORS.key: sum(r.status >= 500 and r.retry_after is None for r in run.records),
        POLL_RATE.key: sum(r.start < CALM + STORM for r in analytics) / STORM,
    }


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    return figures(run_storm(guarded=guarded, scale=scale))


METRICS: tuple[Metric, ...] = (
    ARCHIVE_OK, ARCHIVE_P50, ARCHIVE_P95, CALM_P95, P95_VS_CALM, SERVED, LIMITED, SHED,
    GAVE_UP, ERRORS, POLL_RATE,
)  # fmt: skip

DRILL = Drill(
    name="analytics-storm-e2e",
    incident="modals poll analytics computed in band on the served pipeline API (#1)",
    metrics=METRICS,
    goals=(
        Goal.at_least(ARCHIVE_OK, 99, "archives keep at least {bound} % success"),
        Goal.at_most(P95_VS_CALM, 2, "archive p95 within {bound}x of calm"),
        Goal.at_most(ERRORS, 0, "no 500 errors"),
    ),
    replay=replay,
    headline=ARCHIVE_OK.key,
    min_scale=0.25,
)
"""The ``analytics-storm-e2e`` drill."""
