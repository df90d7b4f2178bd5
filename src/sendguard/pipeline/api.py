"""The pipeline's HTTP API: a Starlette app behind `GuardMiddleware`, health in front.

=======================================  ================================================
``POST /v1/emails``                      create an email: ``{"subject", "body"}`` -> 201
``POST /v1/lists``                       create a list: ``{"name", "addresses"}`` -> 201
``POST /v1/emails/{id}/send``            ``{"list_id"}``: queue lean batch jobs -> 202
``GET /v1/emails/{id}/analytics``        precomputed figures (202 until the cron job
                                         has computed them; never computed here)
``GET /archive/{slug}``                  the public archive page (HTML)
``GET /livez``, ``GET /readyz``          `sendguard.health`: records, Redis, the
                                         analytics heartbeat, the queue backlog
=======================================  ================================================

The `Guard` (`build_guard`) gives every route a baseline limit per client, stricter
limits on creating emails and lists, and a bulkhead plus a slow-call breaker on
analytics (incident #1): refusals are 429 or 503 with ``Retry-After``. The health
endpoints sit in front of the guard, so monitoring still sees the app while it sheds
load. Handlers run database and queue calls in a thread, never on the event loop.

``create_app(..., unguarded=True)`` builds the API as it was before incident #1 (no
guard, analytics computed in band), for the ``analytics-storm-e2e`` drill only.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sendguard import Breaker, Bulkhead, Clock, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.health import (
    ASGIApp,
    FunctionProbe,
    HealthRegistry,
    PostgresProbe,
    Probe,
    ProbeResult,
    RedisProbe,
    RqBacklogProbe,
    Thresholds,
    asgi_app,
)
from sendguard.pipeline.analytics import AnalyticsCron
from sendguard.pipeline.config import PipelineConfig
from sendguard.pipeline.jobqueue import JobQueue
from sendguard.pipeline.records import DeliveryState, Records

__all__ = [
    "MAX_BODY_BYTES",
    "QueuedSend",
    "build_guard",
    "build_health",
    "create_app",
    "enqueue_send",
]

MAX_BODY_BYTES = 4 * 1024 * 1024
"""The largest request body accepted (a list of about 100,000 addresses)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueuedSend:
    """What sending an email to a list queued."""

    email_id: int
    list_id: int
    recipients: int
    """Messages queued now (recipients already sent or in flight are not queued again)."""
    jobs: int


def enqueue_send(
    records: Records, queue: JobQueue, email_id: int, list_id: int, *, batch_size: int
) -> QueuedSend:
    """Queue `email_id` for `list_id`: delivery rows first, then one lean job per batch.

    If the jobs cannot be written (the queue is down), the rows just queued are marked
    ``deferred`` (known not sent), so sending again takes them, and the error is raised.
    """
    queued = records.queue_deliveries(email_id, list_id)
    batches = [queued[n : n + batch_size] for n in range(0, len(queued), batch_size)]
    try:
        jobs = queue.enqueue_batches(email_id, batches)
    except BaseException:
        states = (DeliveryState.QUEUED,)
        records.mark(email_id, queued, DeliveryState.DEFERRED, only_from=states)
        raise
    return QueuedSend(email_id, list_id, len(queued), jobs)


def build_guard(config: PipelineConfig, *, clock: Clock | None = None) -> Guard:
    """The API's policies: a baseline on every route, stricter limits on creation, and a
    bulkhead and a slow-call breaker on analytics. Shared through Redis when configured."""
    create = RoutePolicy(limits=config.create_limits)
    analytics = RoutePolicy(
        limits=config.analytics_limits,
        bulkhead=Bulkhead(config.analytics_concurrency, max_wait=0.05),
        breaker=Breaker.rate(0.5, slow=config.analytics_slow),
    )
    options: dict[str, Any] = {} if clock is None else {"clock": clock}
    return Guard(
        config.redis_url,
        baseline=RoutePolicy(limits=config.baseline_limits),
        routes={
            "POST /v1/emails": create,
            "POST /v1/lists": create,
            "GET /v1/emails/{id}/analytics": analytics,
        },
        **options,
    )


def build_health(
    config: PipelineConfig,
    records: Records,
    queue: JobQueue,
    cron: AnalyticsCron,
    *,
    interval: float = 5.0,
) -> HealthRegistry:
    """Readiness: the records database (a fresh connection for Postgres), Redis when
    configured, the analytics cron's heartbeat and the queue backlog (both not critical:
    reported, never taking the API out of service)."""
    probes: list[Probe] = []
    if config.postgres_dsn:
        probes.append(PostgresProbe(config.postgres_dsn, name="records", warn_if_superuser=False))
    else:
        probes.append(FunctionProbe(records.ping, "records", component_type="datastore"))
    if config.redis_url:
        probes.append(RedisProbe(config.redis_url))
        probes.append(RqBacklogProbe(config.redis_url, config.queue_name, name="queue"))
    else:
        depth = Thresholds.above(warn=1000)

        def backlog() -> ProbeResult:
            waiting = queue.backlog()
            status = depth.judge(waiting)
            message = "" if status.value == "pass" else f"{waiting} jobs waiting"
            return ProbeResult(
                status,
                message,
                observed_value=waiting,
                observed_unit="{job}",
                measurement="backlog",
            )

        probes.append(FunctionProbe(backlog, "queue", critical=False))
    probes.append(cron.probe())
    return HealthRegistry(probes, interval=interval, description="sendguard pipeline")


def _problem(status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


class _Invalid(Exception):
    """A request the API cannot take (answered 4xx with `detail`)."""

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.status = status


async def _json_object(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _Invalid(f"the body is over {MAX_BODY_BYTES} bytes", 413)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _Invalid(f"the body is over {MAX_BODY_BYTES} bytes", 413)
    try:
        data = json.loads(raw or b"null")
    except ValueError as error:
        raise _Invalid(f"the body is not JSON: {error}", 400) from None
    if not isinstance(data, dict):
        raise _Invalid("the body must be a JSON object", 400)
    return data


def _field(data: dict[str, Any], name: str, kind: type[T], check: Callable[[T], bool]) -> T:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) or not check(value):
        raise _Invalid(f"{name!r} is missing or invalid: got {value!r}"[:300])
    return value


def _path_id(request: Request) -> int:
    text = str(request.path_params["id"])
    if not text.isdigit() or len(text) > 18:
        raise _Invalid(f"no email {text!r}", 404)
    return int(text)


def create_app(
    config: PipelineConfig,
    records: Records,
    queue: JobQueue,
    health: HealthRegistry,
    *,
    guard: Guard | None = None,
    unguarded: bool = False,
) -> ASGIApp:
    """The API (see the module doc): health endpoints, then the guard, then the routes.

    `unguarded` builds the API as it was before incident #1, for the
    ``analytics-storm-e2e`` drill's unguarded run only: no `GuardMiddleware` (and so no
    limits, bulkhead or breaker), and analytics computed in band on every request (a
    grouped count over the email's deliveries, holding the records' connection while it
    runs) instead of read from what the cron job stored. Never use it in production.
    """

    async def create_email(request: Request) -> Response:
        data = await _json_object(request)
        subject = _field(data, "subject", str, lambda s: 0 < len(s) <= 500 and s.isprintable())
        body = _field(data, "body", str, lambda b: len(b) <= 1_000_000)
        email = await run_in_threadpool(records.create_email, subject, body)
        return JSONResponse(
            {"id": email.id, "slug": email.slug, "archive": f"/archive/{email.slug}"},
            status_code=201,
        )

    async def create_list(request: Request) -> Response:
        data = await _json_object(request)
        name = _field(data, "name", str, lambda s: 0 < len(s) <= 200)
        addresses = _field(data, "addresses", list, lambda a: all(isinstance(x, str) for x in a))
        try:
            mailing = await run_in_threadpool(records.create_list, name, addresses)
        except ValueError as error:
            raise _Invalid(str(error)) from None
        return JSONResponse(
            {"id": mailing.id, "name": mailing.name, "size": mailing.size}, status_code=201
        )

    def queue_send(email_id: int, list_id: int) -> Response:
        if records.email(email_id) is None:
            raise _Invalid(f"no email {email_id}", 404)
        if records.mailing_list(list_id) is None:
            raise _Invalid(f"no list {list_id}", 404)
        try:
            done = enqueue_send(records, queue, email_id, list_id, batch_size=config.batch_size)
        except Exception as error:  # the rows were marked deferred: the next send takes them
            detail = f"nothing was queued: {type(error).__name__}: {error}"
            return _problem(503, "Queue unavailable", detail, **{"Retry-After": "5"})
        body = {"email_id": email_id, "list_id": list_id, "recipients": done.recipients}
        return JSONResponse({**body, "jobs": done.jobs}, status_code=202)

    async def send(request: Request) -> Response:
        email_id = _path_id(request)
        data = await _json_object(request)
        list_id = _field(data, "list_id", int, lambda n: n > 0)
        return await run_in_threadpool(queue_send, email_id, list_id)

    async def analytics(request: Request) -> Response:
        email_id = _path_id(request)
        if unguarded:  # the incident's code path: computed in band, on every request
            computed = await run_in_threadpool(records.compute_analytics, [email_id])
            if not computed:
                raise _Invalid(f"no deliveries for email {email_id}", 404)
            return JSONResponse({"status": "ready", **computed[0].to_json()})
        stored = await run_in_threadpool(records.analytics, email_id)
        if stored is not None:
            return JSONResponse({"status": "ready", **stored.to_json()})
        if await run_in_threadpool(records.email, email_id) is None:
            raise _Invalid(f"no email {email_id}", 404)
        # Not computed yet: say when to look again rather than computing in band.
        wait = str(max(1, math.ceil(config.analytics_every)))
        pending = {"status": "pending", "email_id": email_id}
        return JSONResponse(pending, status_code=202, headers={"Retry-After": wait})

    async def archive(request: Request) -> Response:
        email = await run_in_threadpool(records.email_by_slug, str(request.path_params["slug"]))
        if email is None:
            return HTMLResponse("<!doctype html><title>Not found</title><h1>Not found</h1>", 404)
        paragraphs = "".join(
            f"<p>{html.escape(part)}</p>" for part in email.body.split("\n\n") if part.strip()
        )
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(email.subject)}</title></head><body><article>"
            f"<h1>{html.escape(email.subject)}</h1>{paragraphs}</article></body></html>"
        )
        return HTMLResponse(page, headers={"Cache-Control": "public, max-age=300"})

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, _Invalid)
        titles = {400: "Bad Request", 404: "Not Found", 413: "Content Too Large"}
        title = titles.get(error.status, "Unprocessable Content")
        return _problem(error.status, title, str(error))

    app = Starlette(
        routes=[
            Route("/v1/emails", create_email, methods=["POST"]),
            Route("/v1/lists", create_list, methods=["POST"]),
            Route("/v1/emails/{id}/send", send, methods=["POST"]),
            Route("/v1/emails/{id}/analytics", analytics, methods=["GET"]),
            Route("/archive/{slug}", archive, methods=["GET"]),
        ],
        exception_handlers={_Invalid: invalid},
    )
    if unguarded:
        return asgi_app(health, app, start=False)
    guarded = GuardMiddleware(app, guard if guard is not None else build_guard(config))
    return asgi_app(health, guarded, start=False)
