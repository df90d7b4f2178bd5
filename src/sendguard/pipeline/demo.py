"""``sendguard demo``: a short scripted send through the whole pipeline, with faults.

Two SMTP sinks on loopback stand for two providers. The primary drops the connection
after DATA for a few messages (they may or may not have been delivered: unknown, never
resent), answers 451 or 550 to a few more, and goes down for part of the run, so its
breaker opens and the backup takes over. An email and a list of 200 recipients are
created, and the email sent, through the guarded API (in process, over ASGI); the
in-process workers drain the queue; the analytics cron job runs; a table shows where
every message ended up. The run passes when no message reached a sink twice and every
message marked sent is at a sink.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, TextIO

import httpx

from sendguard.pipeline.app import Pipeline, PipelineReport
from sendguard.pipeline.config import PipelineConfig, ProviderConfig
from sendguard.pipeline.faults import Fault, FaultPlan
from sendguard.pipeline.sinks import SinkServer

__all__ = ["run_demo"]

_DOMAINS = ("example.com", "example.net", "example.org")


def _outage(primary: SinkServer, backup: SinkServer, done: threading.Event, log: list[str]) -> None:
    """Take the primary down once it stored 40 messages, until the backup stored 40."""
    primary.wait_until(lambda sink: len(sink.received()) >= 40 or done.is_set(), 20)
    if done.is_set():
        return
    primary.faults.down = True
    primary.drop_connections()
    log.append(f"primary down after storing {len(primary.received())} messages")
    backup.wait_until(lambda sink: len(sink.received()) >= 40 or done.is_set(), 20)
    primary.faults.down = False
    log.append(f"primary back up after the backup stored {len(backup.received())}")


async def _through_api(pipeline: Pipeline, recipients: int) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=pipeline.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        created = await client.post(
            "/v1/emails",
            json={"subject": "The spring issue", "body": "Hello!\n\nOur news, in brief."},
        )
        created.raise_for_status()
        email = created.json()
        addresses = [f"reader{n}@{_DOMAINS[n % len(_DOMAINS)]}" for n in range(recipients)]
        made = await client.post("/v1/lists", json={"name": "readers", "addresses": addresses})
        made.raise_for_status()
        send_to = {"list_id": made.json()["id"]}
        sent = await client.post(f"/v1/emails/{email['id']}/send", json=send_to)
        sent.raise_for_status()
        archive = await client.get(email["archive"])
        return {"email": email, "send": sent.json(), "archive": archive.status_code}


async def _analytics(pipeline: Pipeline, email_id: int) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=pipeline.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        reply = await client.get(f"/v1/emails/{email_id}/analytics")
        body: dict[str, Any] = reply.json()
        return body


def _table(report: PipelineReport, analytics: dict[str, Any]) -> list[str]:
    lines = ["", report.render(), ""]
    providers = analytics.get("providers", {})
    per_provider = ", ".join(
        f"{name}: {counts.get('sent', 0)} sent" for name, counts in sorted(providers.items())
    )
    lines.append(f"GET /v1/emails/{report.email_id}/analytics (precomputed): {per_provider}")
    return lines


def run_demo(out: TextIO, *, recipients: int = 200, seed: int = 7) -> int:
    """Run the demo, writing its report to `out`; 0 when every target is met, else 1."""
    started = time.monotonic()
    faults = FaultPlan(
        {Fault.DROP_AFTER_DATA: 0.03, Fault.TRANSIENT: 0.05, Fault.PERMANENT: 0.01}, seed=seed
    )
    with SinkServer("primary", faults=faults) as primary, SinkServer("backup") as backup:
        config = PipelineConfig(
            providers=(
                ProviderConfig("primary", primary.host, primary.port, timeout=2.0),
                ProviderConfig("backup", backup.host, backup.port, timeout=2.0),
            ),
            batch_size=20,
            breaker_failures=3,
            breaker_open_for=0.5,
            analytics_every=1.0,
        )
        out.write(
            f"sendguard demo: {recipients} recipients, primary {primary.host}:{primary.port} "
            f"(drops after DATA, 451s, 550s, and an outage), backup {backup.host}:{backup.port}\n"
        )
        done, log = threading.Event(), list[str]()
        with Pipeline(config) as pipeline:
            outage = threading.Thread(
                target=_outage, args=(primary, backup, done, log), daemon=True
            )
            outage.start()
            try:
                api = asyncio.run(_through_api(pipeline, recipients))
                send = api["send"]
                out.write(
                    f"POST /v1/emails/{send['email_id']}/send: 202, {send['recipients']} "
                    f"recipients in {send['jobs']} lean jobs; archive page: {api['archive']}\n"
                )
                pipeline.drain(timeout=60)
            except (httpx.HTTPError, TimeoutError) as error:
                out.write(f"FAIL: {type(error).__name__}: {error}\n")
                return 1
            finally:
                done.set()
                outage.join(5)
            out.write("".join(f"  {line}\n" for line in log))
            pipeline.refresh_analytics()
            email_id = int(send["email_id"])
            report = pipeline.report(email_id, [primary, backup])
            analytics = asyncio.run(_analytics(pipeline, email_id))
    out.write("\n".join(_table(report, analytics)) + "\n\n")
    settled = sum(report.states.get(s, 0) for s in ("sent", "rejected", "unknown"))
    checks = [
        (report.duplicates == 0, f"no message stored twice ({report.duplicates} duplicates)"),
        (report.sent_not_received == 0, "every message marked sent is at a sink"),
        (settled == recipients, f"every recipient sent, rejected or unknown ({settled})"),
        (report.received.get("backup", 0) > 0, "the backup took over during the outage"),
    ]
    for ok, what in checks:
        out.write(f"{'PASS' if ok else 'FAIL'}  {what}\n")
    passed = all(ok for ok, _ in checks)
    out.write(f"\n{'PASS' if passed else 'FAIL'} in {time.monotonic() - started:.1f}s\n")
    return 0 if passed else 1
