"""Against a real uvicorn server on a loopback port: 503 with Retry-After, then recovery."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from sendguard.backoff import (
    AsyncRetryTransport,
    RetryBudget,
    RetryPolicy,
    RetryScheduled,
    RetryTransport,
)
from sendguard.testing import FakeClock
from tests.backoff._server import FlakyApp, ServerThread

TIMEOUT = httpx.Timeout(5.0)


def test_waits_out_retry_after_then_gets_the_recovered_answer():
    app = FlakyApp(failures=2, retry_after="3")
    clock = FakeClock()
    events: list[object] = []
    transport = RetryTransport(
        policy=RetryPolicy(attempts=4, base=0.1, cap=1.0), clock=clock, hooks=[events.append]
    )
    with ServerThread(app) as server, httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        start = clock.monotonic()
        response = client.get(f"{server.url}/v1/emails/em_1/analytics")
        waited = clock.monotonic() - start
    assert response.status_code == 200
    assert response.text == "ok"
    assert len(app.received) == 3
    scheduled = [e for e in events if isinstance(e, RetryScheduled)]
    assert [(e.reason, e.retry_after) for e in scheduled] == [("status_503", 3.0)] * 2
    # Retry-After is a floor (stretched by at most 10 %); the backoff alone stays under 1 s.
    assert 6.0 <= waited <= 6.6
    assert transport.stats.as_dict()["retries"] == 2


def test_gives_up_with_the_last_503_when_the_outage_outlasts_the_attempts():
    app = FlakyApp(failures=None, retry_after="1")
    transport = RetryTransport(policy=RetryPolicy(attempts=3), clock=FakeClock())
    with ServerThread(app) as server, httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        response = client.get(server.url)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert len(app.received) == 3


def test_budget_caps_what_an_outage_costs_the_server():
    app = FlakyApp(failures=None, retry_after=None)
    policy = RetryPolicy(attempts=3, budget=RetryBudget(capacity=4))
    transport = RetryTransport(policy=policy, clock=FakeClock())
    with ServerThread(app) as server, httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        statuses = [client.get(f"{server.url}/{n}").status_code for n in range(20)]
    assert statuses == [503] * 20
    assert len(app.received) == 20 + 4  # every call once, plus the 4 retries the budget paid
    assert transport.stats.budget_exhausted == 20 - 2  # calls 1-2 spent 2 tokens each


def test_a_post_is_not_retried_but_a_keyed_one_is():
    app = FlakyApp(failures=1)
    transport = RetryTransport(policy=RetryPolicy(attempts=3), clock=FakeClock())
    with ServerThread(app) as server, httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        bare = client.post(f"{server.url}/v1/emails", json={"to": "a@example.com"})
        keyed = client.post(
            f"{server.url}/v1/emails",
            json={"to": "a@example.com"},
            headers={"Idempotency-Key": "em_7"},
        )
    assert (bare.status_code, keyed.status_code) == (503, 200)
    assert [(m, h.get("idempotency-key")) for m, _, h in app.received] == [
        ("POST", None),
        ("POST", "em_7"),
    ]


def test_async_transport_against_the_real_server_with_the_real_clock():
    app = FlakyApp(failures=1, retry_after="0.2")
    transport = AsyncRetryTransport(policy=RetryPolicy(attempts=2, base=0.01, cap=0.01))

    async def main() -> tuple[int, float]:
        async with httpx.AsyncClient(transport=transport, timeout=TIMEOUT) as client:
            started = time.monotonic()
            response = await client.get(server.url)
            return response.status_code, time.monotonic() - started

    with ServerThread(app) as server:
        status, elapsed = asyncio.run(main())
    assert status == 200
    assert len(app.received) == 2
    assert elapsed >= 0.2  # the real wait honoured the server's 0.2 s
    assert elapsed < 3.0


@pytest.mark.parametrize("status", [429, 502, 504])
def test_other_retryable_statuses(status):
    app = FlakyApp(failures=1, status=status, retry_after=None)
    transport = RetryTransport(policy=RetryPolicy(attempts=2), clock=FakeClock())
    with ServerThread(app) as server, httpx.Client(transport=transport, timeout=TIMEOUT) as client:
        assert client.delete(f"{server.url}/v1/webhooks/wh_1").status_code == 200
    assert len(app.received) == 2
