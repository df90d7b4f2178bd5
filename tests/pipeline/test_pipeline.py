"""The whole pipeline, embedded and on real Redis + Postgres, with SMTP faults injected."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sendguard.pipeline import Pipeline, PipelineConfig, run_demo
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.records import DeliveryState
from sendguard.pipeline.sinks import SinkServer
from tests.pipeline.conftest import AsgiClient, providers, stored_counts

S = DeliveryState
FAULTS = {
    Fault.DROP_AFTER_DATA: 0.03,
    Fault.TRANSIENT: 0.05,
    Fault.PERMANENT: 0.02,
    Fault.HANG: 0.01,
}


@pytest.fixture
def faulty_sinks() -> Iterator[tuple[SinkServer, SinkServer]]:
    """A primary with every kind of fault, and a clean backup."""
    plan = FaultPlan(FAULTS, seed=11)
    with (
        SinkServer("primary", faults=plan, hang_seconds=5) as primary,
        SinkServer("backup") as backup,
    ):
        yield primary, backup


def outage(primary: SinkServer, backup: SinkServer, stop: threading.Event) -> threading.Thread:
    """Take the primary down once it stored 60 messages, until the backup stored 60."""

    def run() -> None:
        primary.wait_until(lambda s: len(s.received()) >= 60 or stop.is_set(), 30)
        primary.faults.down = True
        primary.drop_connections()
        backup.wait_until(lambda s: len(s.received()) >= 60 or stop.is_set(), 30)
        primary.faults.down = False

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def config_for(sinks: tuple[SinkServer, SinkServer], **changes: Any) -> PipelineConfig:
    return PipelineConfig(
        providers=providers(*sinks, timeout=0.5),
        batch_size=25,
        breaker_failures=3,
        breaker_open_for=0.2,
        **changes,
    )


def check_exactly_once(
    pipeline: Pipeline, email_id: int, sinks: tuple[SinkServer, ...], n: int
) -> dict[str, int]:
    """Every recipient was stored exactly once, or is listed rejected (never stored) or
    unknown (stored at most once); nothing is left queued, sending or deferred."""
    stored = stored_counts(*sinks)
    rows = pipeline.records.deliveries(email_id)
    assert len(rows) == n
    states = {s.value: 0 for s in S}
    for row in rows:
        states[row.state.value] += 1
        copies = stored[f"send:{email_id}:{row.recipient_id}"]
        if row.state is S.SENT:
            assert copies == 1, row
        elif row.state is S.REJECTED:
            assert copies == 0, row
        else:
            assert row.state is S.UNKNOWN and copies <= 1, row
    assert max(stored.values()) == 1
    unknowns = {e.key for e in pipeline.parts.ledger.unknowns(limit=1000)}
    assert unknowns == {f"send:{email_id}:{r.recipient_id}" for r in rows if r.state is S.UNKNOWN}
    report = pipeline.report(email_id, sinks)
    assert report.duplicates == 0 and report.sent_not_received == 0
    return states


def send_twice_and_check(
    pipeline: Pipeline, sinks: tuple[SinkServer, SinkServer], n: int
) -> dict[str, int]:
    client = AsgiClient(pipeline.app, pipeline.guard)
    try:
        return send_twice(pipeline, client, sinks, n)
    finally:
        client.close()


def send_twice(
    pipeline: Pipeline, client: AsgiClient, sinks: tuple[SinkServer, SinkServer], n: int
) -> dict[str, int]:
    created = client.request("POST", "/v1/emails", {"subject": "Issue 1", "body": "Hello!"})
    email_id = created.json()["id"]
    mailing = pipeline.create_list("readers", n)
    stop = threading.Event()
    thread = outage(*sinks, stop)
    try:
        sent = client.request("POST", f"/v1/emails/{email_id}/send", {"list_id": mailing.id})
        assert sent.status_code == 202 and sent.json()["jobs"] == n // 25
        pipeline.drain(60)
    finally:
        stop.set()
        thread.join(10)
    states = check_exactly_once(pipeline, email_id, sinks, n)
    assert states["sent"] > n * 0.8 and states["rejected"] > 0 and states["unknown"] > 0
    assert all(s.received() for s in sinks)  # the backup took over during the outage

    before = stored_counts(*sinks)
    again = client.request("POST", f"/v1/emails/{email_id}/send", {"list_id": mailing.id})
    assert again.json()["recipients"] == 0 and again.json()["jobs"] == 0
    pipeline.drain(10)
    assert stored_counts(*sinks) == before

    pipeline.refresh_analytics()
    figures = client.request("GET", f"/v1/emails/{email_id}/analytics")
    assert figures.status_code == 200
    assert {k: v for k, v in figures.json()["states"].items() if v} == {
        k: v for k, v in states.items() if v
    }
    return states


def test_embedded_pipeline_sends_every_recipient_at_most_once(faulty_sinks):
    with Pipeline(config_for(faulty_sinks)) as pipeline:
        assert pipeline.config.embedded
        send_twice_and_check(pipeline, faulty_sinks, 300)


@pytest.mark.redis
@pytest.mark.postgres
def test_pipeline_on_redis_and_postgres_sends_every_recipient_at_most_once(
    faulty_sinks, redis_url, redis_client, pipeline_dsn
):
    config = config_for(faulty_sinks, redis_url=redis_url, postgres_dsn=pipeline_dsn)
    with Pipeline(config) as pipeline:
        assert type(pipeline.queue).__name__ == "RqQueue"
        assert pipeline.records.backend.label == "postgres"
        send_twice_and_check(pipeline, faulty_sinks, 300)
        assert redis_client.exists("sendguard:{ledger:pipeline-sends}:unknown")
        jobs = [k for k in redis_client.scan_iter("rq:job:*") if redis_client.type(k) == b"hash"]
        assert jobs and max(redis_client.hstrlen(k, "data") for k in jobs) < 1024


def test_the_api_is_served_on_uvicorn(sinks):
    with Pipeline(config_for(sinks)) as pipeline:
        base = pipeline.serve()
        with httpx.Client(base_url=base) as client:
            assert client.get("/livez").status_code == 200
            created = client.post("/v1/emails", json={"subject": "Served", "body": "over TCP"})
            assert created.status_code == 201
            assert "ratelimit" in created.headers
            assert client.get(created.json()["archive"]).status_code == 200


def test_the_demo_passes_and_lists_what_happened():
    out = io.StringIO()
    assert run_demo(out) == 0, out.getvalue()
    text = out.getvalue()
    assert "duplicates at the sinks: 0" in text
    assert "PASS  the backup took over during the outage" in text
