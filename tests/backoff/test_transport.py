"""The httpx transports on `httpx.MockTransport`: safe retries, hints, breakers, budgets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendguard import BreakerOpen, ConfigError
from sendguard.backoff import (
    AsyncRetryTransport,
    Budgets,
    RetryBudget,
    RetryPolicy,
    RetryScheduled,
    RetryTransport,
)
from sendguard.breakers import Breaker, BreakerRegistry, State
from sendguard.testing import FakeClock

Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """A scripted server: answers (or raises) from a list, then 200; records requests."""

    def __init__(self, *script: int | type[Exception] | httpx.Response) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        step = self.script.pop(0) if self.script else 200
        if isinstance(step, httpx.Response):
            return step
        if isinstance(step, int):
            return httpx.Response(step, text=f"status {step}")
        raise step("scripted", request=request)  # type: ignore[call-arg]


def client(server: Server, clock: FakeClock | None = None, **options) -> httpx.Client:
    options.setdefault("policy", RetryPolicy(attempts=3))
    transport = RetryTransport(httpx.MockTransport(server), clock=clock or FakeClock(), **options)
    return httpx.Client(transport=transport, base_url="https://api.example.com")


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("failure", [429, 502, 503, 504, httpx.ConnectError, httpx.ReadTimeout])
def test_idempotent_methods_are_retried(method, failure):
    server = Server(failure)
    with client(server) as http:
        assert http.request(method, "/v1/emails/em_1").status_code == 200
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 409, 500, 501])
def test_other_answers_are_returned_as_they_are(status):
    server = Server(status)
    with client(server) as http:
        assert http.get("/v1/emails").status_code == status
    assert len(server.requests) == 1


@pytest.mark.parametrize("error", [httpx.UnsupportedProtocol, httpx.LocalProtocolError])
def test_errors_that_retrying_cannot_fix_are_raised_at_once(error):
    server = Server(error)
    with client(server) as http, pytest.raises(error):
        http.get("/v1/emails")
    assert len(server.requests) == 1


methods = st.sampled_from(["POST", "PATCH", "GET", "PUT", "DELETE"])
failures = st.lists(
    st.sampled_from([429, 502, 503, 504, 500, 200, httpx.ConnectError, httpx.ReadTimeout]),
    max_size=6,
)


@settings(max_examples=120, deadline=None)
@given(
    method=methods,
    keyed=st.booleans(),
    script=failures,
    add_keys=st.booleans(),
    header_case=st.sampled_from(["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"]),
)
def test_a_non_idempotent_request_is_never_retried_without_a_key(
    method, keyed, script, add_keys, header_case
):
    server = Server(*script)
    headers = {header_case: "key-1"} if keyed else {}
    http = client(server, policy=RetryPolicy(attempts=4), idempotency_keys=add_keys)
    with http, contextlib.suppress(httpx.TransportError):
        http.request(method, "/v1/emails", headers=headers, content=b"{}")
    sent = server.requests
    keys = {r.headers.get("Idempotency-Key") for r in sent}
    if method in ("POST", "PATCH") and not keyed and not add_keys:
        assert len(sent) == 1
        assert keys == {None}
    else:
        assert len(sent) <= 4
        assert len(keys) == 1  # every attempt carries the same key (or none)
    if len(sent) > 1 and method in ("POST", "PATCH"):
        assert None not in keys


def test_the_transport_adds_one_key_that_every_attempt_repeats():
    server = Server(503, 503)
    with client(server, idempotency_keys=True) as http:
        assert http.post("/v1/emails", json={"to": "a@example.com"}).status_code == 200
    keys = [r.headers["Idempotency-Key"] for r in server.requests]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert len(keys[0]) == 36  # a UUID


def test_a_key_the_caller_set_is_kept():
    server = Server(503)
    with client(server, idempotency_keys=True) as http:
        http.patch("/v1/emails/em_1", json={}, headers={"Idempotency-Key": "mine"})
    assert [r.headers["Idempotency-Key"] for r in server.requests] == ["mine", "mine"]


def test_a_streamed_body_is_buffered_and_sent_again_whole():
    server = Server(503)

    def chunks() -> Iterator[bytes]:
        yield b"hello "
        yield b"world"

    with client(server) as http:
        assert http.put("/v1/templates/t1", content=chunks()).status_code == 200
    assert [r.content for r in server.requests] == [b"hello world", b"hello world"]


def test_retry_after_and_ratelimit_set_the_wait():
    clock = FakeClock()
    server = Server(
        httpx.Response(503, headers={"Retry-After": "4"}),
        httpx.Response(429, headers={"RateLimit": '"default";r=0;t=9'}),
    )
    events: list[object] = []
    with client(server, clock, hooks=[events.append]) as http:
        start = clock.monotonic()
        assert http.get("/v1/emails").status_code == 200
    waits = [(e.reason, e.retry_after) for e in events if isinstance(e, RetryScheduled)]
    assert waits == [("status_503", 4.0), ("status_429", 9.0)]
    assert 13.0 <= clock.monotonic() - start <= 14.3


def test_malformed_retry_after_is_ignored_and_the_backoff_used():
    clock = FakeClock()
    server = Server(httpx.Response(503, headers={"Retry-After": "tomorrow-ish"}))
    with client(server, clock, policy=RetryPolicy(base=0.5, cap=0.5)) as http:
        start = clock.monotonic()
        assert http.get("/v1/emails").status_code == 200
    assert clock.monotonic() - start <= 0.5


def test_a_retry_after_beyond_the_maximum_returns_the_answer_at_once():
    clock = FakeClock()
    server = Server(httpx.Response(429, headers={"Retry-After": "86400"}))
    with client(server, clock, policy=RetryPolicy(max_retry_after=60)) as http:
        response = http.get("/v1/emails")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "86400"
    assert len(server.requests) == 1
    assert clock.monotonic() == FakeClock().monotonic()


def test_an_open_breaker_fails_fast_without_sending():
    clock = FakeClock()
    registry = BreakerRegistry(Breaker.consecutive(2, open_for=30), clock=clock)
    server = Server(*([503] * 10))
    with client(server, clock, breakers=registry, policy=RetryPolicy(attempts=3)) as http:
        with pytest.raises(BreakerOpen) as refused:
            http.get("/v1/emails")  # 503, 503: the breaker opens; the third attempt is refused
        assert len(server.requests) == 2
        with pytest.raises(BreakerOpen):
            http.get("/v1/emails")
        assert len(server.requests) == 2  # nothing sent while open
    assert refused.value.key == "provider:api.example.com"
    assert registry.provider("api.example.com").state is State.OPEN


def test_429_does_not_count_against_the_breaker():
    registry = BreakerRegistry(Breaker.consecutive(1), clock=FakeClock())
    server = Server(429, 429)
    with client(server, breakers=registry) as http:
        assert http.get("/v1/emails").status_code == 200
    assert registry.provider("api.example.com").state is State.CLOSED


def test_budgets_are_per_host_by_default():
    budgets = Budgets(RetryBudget(capacity=2))
    down, up = Server(*([503] * 100)), Server(503, 503)

    def route(request: httpx.Request) -> httpx.Response:
        return (down if request.url.host == "down.example.com" else up)(request)

    transport = RetryTransport(
        httpx.MockTransport(route), RetryPolicy(attempts=3), budgets=budgets, clock=FakeClock()
    )
    with httpx.Client(transport=transport) as http:
        for _ in range(5):
            http.get("https://down.example.com/")
        assert http.get("https://up.example.com/").status_code == 200
    assert len(down.requests) == 5 + 2
    assert len(up.requests) == 3
    assert set(budgets.buckets()) == {"down.example.com", "up.example.com"}


@settings(max_examples=60, deadline=None)
@given(
    latencies=st.lists(st.floats(min_value=0.0, max_value=20.0), min_size=1, max_size=30),
    deadline=st.floats(min_value=1.0, max_value=30.0),
    attempt_timeout=st.one_of(st.none(), st.floats(min_value=0.1, max_value=10.0)),
)
def test_transport_time_never_passes_the_deadline(latencies, deadline, attempt_timeout):
    clock = FakeClock()
    slow = iter(latencies)

    def handler(request: httpx.Request) -> httpx.Response:
        limit = request.extensions["timeout"]["read"]
        latency = next(slow, 0.0)
        clock.advance(min(latency, limit))  # the socket gives up at the read timeout
        if latency > limit:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(503)

    policy = RetryPolicy(
        attempts=1000, base=0.1, cap=2, deadline=deadline, attempt_timeout=attempt_timeout,
        budget=None,
    )  # fmt: skip
    transport = RetryTransport(httpx.MockTransport(handler), policy, clock=clock)
    with httpx.Client(transport=transport, timeout=60) as http:
        start = clock.monotonic()
        with contextlib.suppress(httpx.ReadTimeout):
            http.get("https://api.example.com/")
        assert clock.monotonic() - start <= deadline + 1e-6


def test_the_async_transport_retries_like_the_sync_one():
    clock = FakeClock()
    server = Server(httpx.Response(503, headers={"Retry-After": "2"}), httpx.ConnectError)

    async def handler(request: httpx.Request) -> httpx.Response:
        return server(request)

    async def main() -> int:
        transport = AsyncRetryTransport(httpx.MockTransport(handler), clock=clock)
        async with httpx.AsyncClient(transport=transport) as http:
            return (await http.get("https://api.example.com/")).status_code

    assert asyncio.run(main()) == 200
    assert len(server.requests) == 3


def test_the_async_transport_breaker_and_keys():
    clock = FakeClock()
    registry = BreakerRegistry(Breaker.consecutive(1, open_for=30), clock=clock)
    server = Server(502, 502)

    async def handler(request: httpx.Request) -> httpx.Response:
        return server(request)

    async def main() -> None:
        transport = AsyncRetryTransport(
            httpx.MockTransport(handler), breakers=registry, idempotency_keys=True, clock=clock
        )
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(BreakerOpen):
                await http.post("https://api.example.com/v1/emails", json={})

    asyncio.run(main())
    assert len(server.requests) == 1
    assert server.requests[0].headers["Idempotency-Key"]


def test_bad_transport_configuration():
    with pytest.raises(ConfigError, match=r"transport must be an httpx\.BaseTransport"):
        RetryTransport(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"an httpx\.AsyncBaseTransport"):
        AsyncRetryTransport(httpx.HTTPTransport())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="methods must be upper-case"):
        RetryTransport(methods=frozenset({"get"}))
    with pytest.raises(ConfigError, match="statuses must be HTTP error codes"):
        RetryTransport(statuses=frozenset({200}))
    with pytest.raises(ConfigError, match="a retry transport needs a RetryPolicy"):
        RetryTransport(policy="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="breakers must be a BreakerRegistry"):
        RetryTransport(breakers=3)  # type: ignore[arg-type]
