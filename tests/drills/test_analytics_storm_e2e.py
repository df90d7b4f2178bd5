"""The analytics-storm-e2e drill: a real uvicorn server in a process of its own, real httpx
pollers and readers. In band and unguarded, the archives time out; as built, they keep
their calm latency and the pollers wait out Retry-After."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills.analytics_storm_e2e import (
    CALM,
    DRILL,
    EVERY,
    POLLERS,
    STORM,
    Record,
    StormRun,
    figures,
    run_storm,
)
from sendguard.pipeline import (
    DeliveryState,
    Pipeline,
    PipelineConfig,
    ProviderConfig,
    SinkServer,
    create_app,
)
from tests.drills._recorded import RecordedDrill

SCALE = 0.25  # a quarter of the readers, over the same 3.5 s of traffic


@pytest.fixture(scope="module")
def runs() -> RecordedDrill[StormRun]:
    return RecordedDrill(DRILL, run_storm, figures, SCALE)


@pytest.fixture(scope="module")
def result(runs: RecordedDrill[StormRun]) -> DrillResult:
    return runs.result


def by_modal(run: StormRun) -> dict[int, list[Record]]:
    modals: dict[int, list[Record]] = {}
    for record in sorted(run.analytics(), key=lambda r: r.start):
        assert record.modal is not None
        modals.setdefault(record.modal, []).append(record)
    return modals


@pytest.mark.slow
def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []
    assert result.passed


@pytest.mark.slow
def test_unguarded_run_loses_the_archives(result: DrillResult) -> None:
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    assert verdicts["archive_ok_pct"] is False
    assert verdicts["p95_vs_calm"] is False
    ok = result.figure("archive_ok_pct")
    assert ok.unguarded is not None
    assert ok.unguarded < 99
    assert ok.guarded is not None
    assert ok.guarded >= 99
    failed = result.figure("analytics_failed")
    assert (failed.unguarded or 0) > 0  # polls given up while the server still computes them
    assert failed.guarded == 0
    assert (result.figure("analytics_429").guarded or 0) > 0  # the limit per key bites
    rate = result.figure("poll_rate")
    assert rate.unguarded is not None
    assert rate.guarded is not None
    assert rate.unguarded > rate.guarded


@pytest.mark.slow
def test_table_renders_both_runs_and_the_targets(result: DrillResult) -> None:
    text = render(result)
    lines = text.splitlines()
    assert lines[0] == f"drill analytics-storm-e2e (scale {SCALE:g}): {DRILL.incident}"
    for metric in DRILL.metrics:
        assert any(line.startswith(metric.label) for line in lines), metric.label
    assert "archives keep at least 99.0 % success" in text
    assert lines[-1] == f"PASS: {len(DRILL.goals)} of {len(DRILL.goals)} targets met"


@pytest.mark.slow
def test_guarded_pollers_wait_out_retry_after(runs: RecordedDrill[StormRun]) -> None:
    modals = by_modal(runs.runs[True])
    assert len(modals) == POLLERS
    waited = 0
    for polls in modals.values():
        for before, after in itertools.pairwise(polls):
            if before.status in (429, 503):
                assert before.retry_after is not None
                hint = float(before.retry_after)
                assert after.start - (before.start + before.latency) >= hint * 0.99
                waited += 1
            assert after.start > before.start + before.latency  # one poll at a time
    assert waited > 0


@pytest.mark.slow
def test_unguarded_pollers_keep_their_timer_whatever_happened(
    runs: RecordedDrill[StormRun],
) -> None:
    modals = by_modal(runs.runs[False])
    assert len(modals) == POLLERS
    expected = STORM / EVERY
    for polls in modals.values():
        assert expected - 1 <= len(polls) <= expected + 1
        assert all(r.start >= CALM for r in polls)
    overlapping = sum(
        after.start < before.start + before.latency
        for polls in modals.values()
        for before, after in itertools.pairwise(polls)
    )
    assert overlapping > 0  # the next poll went out before the last one was answered


# --- the pipeline switches the drill relies on --------------------------------------------


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    with SinkServer("primary") as sink:
        config = PipelineConfig(
            providers=(ProviderConfig("primary", sink.host, sink.port),), worker_threads=0
        )
        with Pipeline(config, cron=False) as running:
            yield running


def test_unguarded_api_computes_analytics_in_band_without_the_guard(pipeline: Pipeline) -> None:
    email = pipeline.create_email("Big", "Hello")
    readers = pipeline.create_list("readers", 30)
    queued = pipeline.records.queue_deliveries(email.id, readers.id)
    pipeline.records.record(email.id, [(n, DeliveryState.SENT, "primary", "ok") for n in queued])
    lonely = pipeline.create_email("Unsent", "Nobody")
    records, queue, health = pipeline.records, pipeline.queue, pipeline.health
    bare = create_app(pipeline.config, records, queue, health, unguarded=True)

    async def get(app: object, path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get(path)

    computed = asyncio.run(get(bare, f"/v1/emails/{email.id}/analytics"))
    assert computed.status_code == 200
    assert computed.json()["states"] == {"sent": 30}
    assert "ratelimit-policy" not in computed.headers  # no guard in front
    assert asyncio.run(get(bare, f"/v1/emails/{lonely.id}/analytics")).status_code == 404
    # As built, the route only reads what the cron job stored: nothing yet.
    pending = asyncio.run(get(pipeline.app, f"/v1/emails/{email.id}/analytics"))
    assert pending.status_code == 202
    assert pending.headers["retry-after"]
    assert "ratelimit-policy" in pending.headers


def test_served_api_answers_kept_alive_requests_without_a_nagle_delay(
    pipeline: Pipeline,
) -> None:
    url = pipeline.serve()
    took: list[float] = []
    with httpx.Client(base_url=url) as client:
        for _ in range(12):  # one connection, kept alive
            started = time.monotonic()
            assert client.get("/livez").status_code == 200
            took.append(time.monotonic() - started)
    # Without TCP_NODELAY each answer after the first waited ~40 ms for a delayed ACK.
    assert statistics.median(took[2:]) < 0.02
