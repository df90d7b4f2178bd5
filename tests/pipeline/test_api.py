"""The pipeline's API through ASGI: creation, sending, archive, analytics, health, limits."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sendguard.health import HealthRegistry
from sendguard.jobs import Heartbeats
from sendguard.pipeline.analytics import AnalyticsCron
from sendguard.pipeline.api import build_guard, build_health, create_app
from sendguard.pipeline.config import PipelineConfig, ProviderConfig
from sendguard.pipeline.jobqueue import JobQueue, RqQueue, ThreadQueue
from sendguard.pipeline.records import Analytics, DeliveryState, Records
from sendguard.testing import FakeClock
from sendguard.testing.servers import free_port

PROVIDERS = (ProviderConfig("primary", "127.0.0.1", 2525),)


class HeldRecords(Records):
    """Records whose analytics reads wait for `release` and take `took` (fake) seconds,
    to hold analytics requests open or make them slow."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(Records.sqlite().backend, clock=clock)
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Semaphore(0)
        self.took = 0.0

    def analytics(self, email_id: int) -> Analytics | None:
        self.entered.release()
        self.release.wait(10)
        assert isinstance(self.clock, FakeClock)
        self.clock.advance(self.took)
        return super().analytics(email_id)


@dataclass
class Api:
    config: PipelineConfig
    records: HeldRecords
    queue: ThreadQueue
    jobs: list[tuple[int, list[int], int]]
    cron: AnalyticsCron
    health: HealthRegistry
    clock: FakeClock

    def app(self, queue: JobQueue | None = None):
        guard = build_guard(self.config, clock=self.clock)
        return create_app(self.config, self.records, queue or self.queue, self.health, guard=guard)


@pytest.fixture
def api() -> Iterator[Api]:
    clock = FakeClock()
    config = PipelineConfig(
        providers=PROVIDERS, batch_size=40, create_limits="3/minute", analytics_concurrency=1
    )
    records = HeldRecords(clock)
    jobs: list[tuple[int, list[int], int]] = []
    queue = ThreadQueue(config.queue_name, lambda e, ids, r: jobs.append((e, ids, r)), workers=0)
    cron = AnalyticsCron(records, Heartbeats(clock=clock), every=5)
    health = build_health(config, records, queue, cron)
    yield Api(config, records, queue, jobs, cron, health, clock)
    health.close()
    records.close()


def call(app, *requests: tuple[str, str, Any], headers=None) -> list[httpx.Response]:
    """Send the requests one after the other through ASGI."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return [
                await client.request(method, path, json=body, headers=headers)
                for method, path, body in requests
            ]

    return asyncio.run(run())


def test_create_an_email_and_read_its_public_archive(api):
    app = api.app()
    (created,) = call(
        app, ("POST", "/v1/emails", {"subject": "Spring <news>", "body": "A & B\n\nC"})
    )
    assert created.status_code == 201
    email = created.json()
    page, missing = call(app, ("GET", email["archive"], None), ("GET", "/archive/nope", None))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Spring &lt;news&gt;</h1><p>A &amp; B</p><p>C</p>" in page.text
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"body": "no subject"}, 422, "'subject' is missing"),
        ({"subject": "two\nlines", "body": ""}, 422, "'subject'"),
        ({"subject": "ok", "body": 7}, 422, "'body'"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_emails_are_refused_with_a_problem(api, body, status, says):
    (reply,) = call(api.app(), ("POST", "/v1/emails", body))
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/problem+json"
    assert says in reply.json()["detail"]


def test_an_oversized_body_is_refused_before_it_is_read(api):
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=api.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.post("/v1/emails", content=b"x" * (4 * 1024 * 1024 + 1))

    assert asyncio.run(run()).status_code == 413


def test_send_enqueues_lean_batches_of_ids_once(api):
    app = api.app()
    headers = {"Authorization": "Bearer sender"}
    email, mailing = call(
        app,
        ("POST", "/v1/emails", {"subject": "Hello", "body": "Hi"}),
        (
            "POST",
            "/v1/lists",
            {"name": "readers", "addresses": [f"r{n}@example.org" for n in range(100)]},
        ),
        headers=headers,
    )
    assert mailing.status_code == 201 and mailing.json()["size"] == 100
    path = f"/v1/emails/{email.json()['id']}/send"
    first, again = call(
        app,
        ("POST", path, {"list_id": mailing.json()["id"]}),
        ("POST", path, {"list_id": mailing.json()["id"]}),
    )
    assert first.status_code == 202
    assert first.json() == {
        "email_id": email.json()["id"],
        "list_id": mailing.json()["id"],
        "recipients": 100,
        "jobs": 3,
    }
    assert (
        again.status_code == 202 and again.json()["recipients"] == 0 and again.json()["jobs"] == 0
    )
    api.queue.drain(5)
    assert [len(ids) for _, ids, _ in api.jobs] == [40, 40, 20]
    assert all(isinstance(i, int) for _, ids, _ in api.jobs for i in ids)
    assert api.records.state_counts(email.json()["id"]) == {DeliveryState.QUEUED: 100}
    unknown = call(
        app, ("POST", "/v1/emails/999/send", {"list_id": 1}), ("POST", path, {"list_id": 999})
    )
    assert [r.status_code for r in unknown] == [404, 404]


def test_a_queue_that_is_down_answers_503_and_leaves_the_rows_deferred(api):
    email = api.records.create_email("Hello", "Hi")
    mailing = api.records.create_list("readers", ["a@example.org", "b@example.org"])
    dead = RqQueue(f"redis://127.0.0.1:{free_port()}/0", "pipeline")
    try:
        (reply,) = call(
            api.app(dead), ("POST", f"/v1/emails/{email.id}/send", {"list_id": mailing.id})
        )
    finally:
        dead.close()
    assert reply.status_code == 503 and reply.headers["retry-after"] == "5"
    assert "nothing was queued" in reply.json()["detail"]
    assert api.records.state_counts(email.id) == {DeliveryState.DEFERRED: 2}
    assert len(api.records.queue_deliveries(email.id, mailing.id)) == 2  # the next send takes them


def test_analytics_are_never_computed_in_band(api):
    app = api.app()
    email = api.records.create_email("Hello", "Hi")
    mailing = api.records.create_list("readers", ["a@example.org", "b@example.org"])
    ids = api.records.queue_deliveries(email.id, mailing.id)
    api.records.record(email.id, [(ids[0], DeliveryState.SENT, "primary", "250")])
    path = f"/v1/emails/{email.id}/analytics"
    pending, missing = call(app, ("GET", path, None), ("GET", "/v1/emails/424242/analytics", None))
    assert pending.status_code == 202 and pending.headers["retry-after"] == "5"
    assert pending.json() == {"status": "pending", "email_id": email.id}
    assert missing.status_code == 404
    assert api.records.analytics(email.id) is None  # the request computed nothing

    assert api.cron.refresh() == 1
    (ready,) = call(app, ("GET", path, None))
    assert ready.status_code == 200
    body = ready.json()
    assert body["states"] == {"queued": 1, "sent": 1} and body["total"] == 2
    assert body["providers"] == {"primary": {"sent": 1}}


def test_creation_is_limited_more_strictly_than_other_routes(api):
    app = api.app()
    me = {"Authorization": "Bearer busy"}
    replies = call(app, *[("POST", "/v1/emails", {"subject": "s", "body": "b"})] * 4, headers=me)
    assert [r.status_code for r in replies] == [201, 201, 201, 429]
    refused = replies[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["route"] == "POST /v1/emails"
    (other,) = call(
        app,
        ("POST", "/v1/emails", {"subject": "s", "body": "b"}),
        headers={"Authorization": "Bearer calm"},
    )
    assert other.status_code == 201
    slug = replies[0].json()["slug"]
    archive = call(app, *[("GET", f"/archive/{slug}", None)] * 5, headers=me)
    assert [r.status_code for r in archive] == [200] * 5


def test_analytics_bulkhead_sheds_a_second_concurrent_request(api):
    app = api.app()
    email = api.records.create_email("Hello", "Hi")
    api.records.release.clear()

    async def run() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            first = asyncio.ensure_future(client.get(f"/v1/emails/{email.id}/analytics"))
            await asyncio.to_thread(api.records.entered.acquire, True, 10)  # holds the slot
            second = await client.get(f"/v1/emails/{email.id}/analytics")
            api.records.release.set()
            return await first, second

    first, second = asyncio.run(run())
    assert first.status_code == 202
    assert second.status_code == 503 and second.headers["retry-after"] == "1"
    assert second.json()["type"] == "urn:sendguard:problem:bulkhead-full"


def test_slow_analytics_open_the_routes_breaker(api):
    app = api.app()
    email = api.records.create_email("Hello", "Hi")
    api.records.took = 1.0  # over analytics_slow (0.5 s) on the guard's clock
    path = f"/v1/emails/{email.id}/analytics"
    replies = call(app, *[("GET", path, None)] * 12, headers={"Authorization": "Bearer ui"})
    codes = [r.status_code for r in replies]
    assert codes[:10] == [202] * 10 and codes[10:] == [503, 503]
    assert replies[-1].json()["type"] == "urn:sendguard:problem:breaker-open"
    api.records.took = 0.0
    slug = api.records.email(email.id).slug
    (archive,) = call(app, ("GET", f"/archive/{slug}", None))
    assert archive.status_code == 200  # only the analytics route is open


def test_liveness_and_readiness_report_the_pipelines_parts(api):
    app = api.app()
    before = api.health.check_now()
    assert before.status.value == "warn"  # the analytics job has not run yet: not critical
    assert "pipeline-analytics" in before.summary()
    api.cron.refresh()
    api.health.check_now()
    replies = call(app, *[("GET", "/readyz", None)] * 30, ("GET", "/livez", None))
    assert {r.status_code for r in replies} == {200}  # never limited
    ready = json.loads(replies[0].content)
    assert ready["status"] == "pass"
    assert sorted(ready["checks"]) == [
        "heartbeat/pipeline-analytics:age",
        "queue:backlog",
        "records:status",
    ]
    assert replies[0].headers["content-type"] == "application/health+json"
