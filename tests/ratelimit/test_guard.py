"""The Guard: routes, policies, refusals with their advice, headers, decorators."""

from __future__ import annotations

import asyncio
from typing import Any

import http_sf
import pytest

from sendguard import (
    Breaker,
    BreakerOpen,
    Bulkhead,
    BulkheadFull,
    ConfigError,
    Guard,
    RateLimited,
    RoutePolicy,
)
from sendguard._guard import Refusal
from sendguard.testing import FakeClock


def guard(**kw) -> tuple[Guard, FakeClock]:
    clock = FakeClock()
    return Guard(clock=clock, hooks=[], **kw), clock


def req(g: Guard, method: str, path: str, key: str = "k", ip: str = "192.0.2.1"):
    return g.request(method, path, {"authorization": key}, ip)


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: RoutePolicy(limits="ten per fortnight"), ["ten per fortnight"]),
        (lambda: RoutePolicy(limits=""), ["''"]),
        (lambda: RoutePolicy(cost=0), ["cost", "0"]),
        (lambda: Bulkhead(-1), ["max_concurrent", "-1"]),
        (lambda: Bulkhead(2, max_wait=-1), ["max_wait", "-1"]),
        (lambda: Guard(routes={"FETCH /x": RoutePolicy()}), ["FETCH /x"]),
        (lambda: Guard(routes={"GET x": RoutePolicy()}), ["GET x"]),
        (lambda: Guard(routes={"GET /a/{id": RoutePolicy()}), ["GET /a/{id", "{id"]),
        (lambda: Guard(routes={"GET /a/{p:path}/b": RoutePolicy()}), ["must come last"]),
        (lambda: Guard(routes={"GET /a": "30/minute"}), ["routes['GET /a']"]),  # type: ignore[dict-item]
        (
            lambda: Guard(routes={"GET /a": RoutePolicy(limits="2/minute", cost=3)}),
            ["costs 3", "2/60s"],
        ),
        (lambda: Guard(trusted_proxies=["not-an-ip"]), ["not-an-ip"]),
        (lambda: Guard(on_store_failure="maybe"), ["maybe"]),  # type: ignore[arg-type]
        (lambda: Guard(baseline=RoutePolicy.exempt()), ["baseline"]),
        (lambda: Guard(store="ftp://x"), ["ftp"]),
    ],
)
def test_bad_configuration_fails_at_start_up_naming_the_value(build, names):
    with pytest.raises(ConfigError) as caught:
        build()
    for name in names:
        assert name in str(caught.value)


def test_requests_reduce_to_patterns_or_a_catch_all_never_raw_paths():
    g, _ = guard(
        routes={
            "GET /v1/emails/{id}/analytics": RoutePolicy(limits="5/minute"),
            "GET /v1/emails/drafts": RoutePolicy(limits="9/minute"),
            "* /files/{rest:path}": RoutePolicy(),
        }
    )
    assert g.route_name("GET", "/v1/emails/42/analytics") == "GET /v1/emails/{id}/analytics"
    assert g.route_name("GET", "/v1/emails/drafts") == "GET /v1/emails/drafts"
    assert g.route_name("PUT", "/files/a/b/c") == "PUT /files/{rest:path}"
    assert g.route_name("GET", "/v1/emails/42") == "GET *"
    assert g.route_name("get", "/anything/else", template="/v1/emails/{email_id}/analytics") == (
        "GET /v1/emails/{email_id}/analytics"
    )
    # a framework template with other parameter names still finds the configured policy
    assert (
        g.policy_for("GET /v1/emails/{email_id}/analytics").rates
        == g.policy_for("GET /v1/emails/{id}/analytics").rates
    )


def test_limited_requests_get_429_with_retry_after_and_valid_structured_fields():
    g, _ = guard(baseline=RoutePolicy(limits="2/second;100/hour"))
    for _ in range(2):
        admitted = g.enter(req(g, "GET", "/x"))
        fields = dict(admitted.headers())
        g.leave(admitted, 200)
    with pytest.raises(Refusal) as caught:
        g.enter(req(g, "GET", "/x"))
    refusal = caught.value
    assert refusal.status == 429
    assert isinstance(refusal.error, RateLimited)
    headers = dict(refusal.headers)
    assert headers["Retry-After"] == "2"
    assert headers["Content-Type"] == "application/problem+json"

    def parse(value: str) -> Any:
        return http_sf.parse(value.encode(), tltype="list")

    for name in ("RateLimit-Policy", "RateLimit"):
        parsed = parse(headers[name])
        assert [item[0] for item in parsed] == ["route-1s", "route-3600s"]
    policy = parse(fields["RateLimit-Policy"])
    assert dict(policy[0][1]) == {"q": 2, "w": 1}
    state = parse(headers["RateLimit"])
    assert dict(state[0][1])["r"] == 0
    assert dict(state[1][1])["r"] == 98
    import json

    body = json.loads(refusal.body)
    assert body["status"] == 429
    assert body["route"] == "GET *"
    assert body["retry_after"] == 2


def test_exempt_routes_are_untouched():
    g, _ = guard(
        baseline=RoutePolicy(limits="1/hour"), routes={"GET /healthz": RoutePolicy.exempt()}
    )
    assert g.exempt(g.route_name("GET", "/healthz"))
    assert not g.exempt(g.route_name("GET", "/other"))


def test_group_limits_are_shared_and_app_limits_stack():
    g, _ = guard(
        app_limits="5/minute",
        routes={
            "GET /exports/a": RoutePolicy(limits="2/minute", group="exports"),
            "GET /exports/b": RoutePolicy(limits="2/minute", group="exports"),
        },
    )
    g.leave(g.enter(req(g, "GET", "/exports/a")), 200)
    g.leave(g.enter(req(g, "GET", "/exports/b")), 200)
    with pytest.raises(Refusal, match="group:exports"):
        g.enter(req(g, "GET", "/exports/a"))
    for _ in range(3):
        g.leave(g.enter(req(g, "GET", "/other")), 200)
    with pytest.raises(Refusal, match="app"):
        g.enter(req(g, "GET", "/other"))
    assert g.enter(req(g, "GET", "/other", key="someone-else"))


def test_5xx_trips_the_route_breaker_and_refusals_are_503():
    g, _ = guard(
        baseline=RoutePolicy(breaker=Breaker.consecutive(2)),
        routes={"GET /flaky": RoutePolicy(), "GET /healthy": RoutePolicy()},
    )
    for _ in range(2):
        g.leave(g.enter(req(g, "GET", "/flaky")), 502)
    with pytest.raises(Refusal) as caught:
        g.enter(req(g, "GET", "/flaky"))
    assert caught.value.status == 503
    assert isinstance(caught.value.error, BreakerOpen)
    g.leave(g.enter(req(g, "GET", "/healthy")), 200)  # other routes are not affected
    # paths that match no pattern share their method's catch-all (bounded state)
    assert g.route_name("GET", "/unknown/1") == g.route_name("GET", "/unknown/2") == "GET *"


def test_a_full_bulkhead_refuses_with_503_and_gives_the_breaker_nothing():
    g, _ = guard(
        routes={"GET /slow": RoutePolicy(bulkhead=Bulkhead(2), breaker=Breaker.consecutive(1))}
    )
    held = [g.enter(req(g, "GET", "/slow")) for _ in range(2)]
    with pytest.raises(Refusal) as caught:
        g.enter(req(g, "GET", "/slow"))
    assert caught.value.status == 503
    assert isinstance(caught.value.error, BulkheadFull)
    for p in held:
        g.leave(p, 200)
    g.leave(g.enter(req(g, "GET", "/slow")), 200)
    assert g.breakers.route("GET /slow").state.value == "closed"


def test_a_broken_key_function_falls_back_to_the_client_address():
    def broken(request):
        raise RuntimeError("bug in app code")

    g, _ = guard(baseline=RoutePolicy(limits="1/minute"), key=broken)
    g.leave(g.enter(req(g, "GET", "/x", ip="192.0.2.5")), 200)
    with pytest.raises(Refusal):
        g.enter(req(g, "GET", "/x", ip="192.0.2.5"))
    g.leave(g.enter(req(g, "GET", "/x", ip="192.0.2.6")), 200)


def test_route_decorators_sync_and_async():
    g, _ = guard(routes={"POST /v1/emails": RoutePolicy(limits="2/minute")})

    @g.route("POST /v1/emails", key=lambda account, body: account)
    def create(account: str, body: str) -> str:
        return f"created {body}"

    @g.route("POST /v1/emails", key=lambda account: account)
    async def acreate(account: str) -> str:
        return "async created"

    assert create("acme", "hello") == "created hello"
    assert create("acme", "again") == "created again"
    with pytest.raises(RateLimited) as caught:
        create("acme", "third")
    assert caught.value.retry_after > 0
    assert asyncio.run(acreate("globex")) == "async created"


def test_async_enter_and_leave():
    g, _ = guard(baseline=RoutePolicy(limits="1/minute", bulkhead=Bulkhead(1)))

    async def main() -> None:
        p = await g.aenter(req(g, "GET", "/x"))
        with pytest.raises(Refusal):
            await g.aenter(req(g, "GET", "/x"))
        await g.aleave(p, 200)

    asyncio.run(main())


def test_deny_on_store_failure_answers_429_instead_of_crashing():
    from sendguard.testing.servers import free_port

    g = Guard(
        f"redis://127.0.0.1:{free_port()}/0",
        baseline=RoutePolicy(limits="5/minute"),
        on_store_failure="deny",
        hooks=[],
    )
    with pytest.raises(Refusal) as caught:
        g.enter(req(g, "GET", "/x"))
    assert caught.value.status == 429
    assert "on_store_failure='deny'" in str(caught.value.error)

    async def main() -> int:
        try:
            await g.aenter(req(g, "GET", "/x"))
        except Refusal as refusal:
            return refusal.status
        return 200

    assert asyncio.run(main()) == 429


def test_a_routes_own_breaker_policy_applies_whatever_its_name():
    g, _ = guard(
        baseline=RoutePolicy(breaker=Breaker.consecutive(50)),
        routes={"GET /v1/emails/{id}": RoutePolicy(breaker=Breaker.consecutive(1))},
    )
    route = g.route_name("GET", "/ignored", template="/v1/emails/{email_id}")
    breaker = g.bound(route).breaker
    assert breaker is not None
    assert breaker.policy.consecutive_failures == 1


def test_groups_must_agree_on_their_bulkhead_and_share_one():
    with pytest.raises(ConfigError, match="different bulkheads"):
        Guard(
            routes={
                "GET /a": RoutePolicy(group="g", bulkhead=Bulkhead(2)),
                "GET /b": RoutePolicy(group="g", bulkhead=Bulkhead(5)),
            }
        )
    g, _ = guard(
        routes={
            "GET /a": RoutePolicy(group="g", bulkhead=Bulkhead(1)),
            "GET /b": RoutePolicy(group="g", bulkhead=Bulkhead(1)),
        }
    )
    held = g.enter(req(g, "GET", "/a"))
    with pytest.raises(Refusal):
        g.enter(req(g, "GET", "/b"))
    g.leave(held, 200)


def test_invented_methods_do_not_mint_routes():
    g, _ = guard()
    names = {g.route_name(m, "/x") for m in ("FOO", "BAR", "PROPFIND", "get")}
    assert names == {"OTHER *", "GET *"}


def test_decorator_key_functions_that_fail_or_return_ints_do_not_fail_the_call():
    g, _ = guard(routes={"GET /v1/emails/{id}": RoutePolicy(limits="1/minute")})

    @g.route("GET /v1/emails/{id}", key=lambda email_id: email_id)
    def show(email_id: int) -> int:
        return email_id

    @g.route("GET /v1/emails/{id}", key=lambda: 1 / 0)
    def broken() -> str:
        return "served"

    assert show(1) == 1
    assert show(2) == 2  # keys 1 and 2 are apart
    assert broken() == "served"


def test_a_route_without_limits_never_asks_for_a_key():
    asked: list[str] = []

    def key(request: Any) -> str:
        asked.append(request.route)
        return "tenant:1"

    g, _ = guard(
        baseline=RoutePolicy(bulkhead=Bulkhead(2)),
        routes={"GET /limited": RoutePolicy(limits="5/minute")},
        key=key,
    )
    for path in ("/open", "/limited"):
        p = g.enter(req(g, "GET", path))
        assert (p.headers() == []) is (path == "/open")
        g.leave(p, 200)
    assert asked == ["GET /limited"]  # the unlimited route counted nothing, keyed nothing


def test_a_plain_end_is_finished_without_awaiting_and_anything_else_is_left_to_aleave():
    g, _ = guard(
        baseline=RoutePolicy(bulkhead=Bulkhead(1), breaker=Breaker.consecutive(1)),
    )
    route = g.bound("GET /x")
    assert route.gate is not None and route.breaker is not None
    p = g.admit(route, "k")
    assert g.leave_fast(p, 200) is True
    assert route.gate.in_flight == 0  # the slot is back
    p = g.admit(route, "k")
    assert g.leave_fast(p, 503) is False  # a failure may trip: the breaker's slow path
    assert route.gate.in_flight == 1  # and nothing was done, the slot is still held
    asyncio.run(g.aleave(p, 503))
    assert route.gate.in_flight == 0
    with pytest.raises(Refusal) as refused:
        g.admit(route, "k")
    assert refused.value.status == 503  # aleave fed the failure to the breaker


def test_the_ratelimit_encoder_writes_what_the_general_formatter_writes():
    from hypothesis import given
    from hypothesis import strategies as st

    from sendguard.ratelimit._headers import ratelimit_encoder, ratelimit_value
    from sendguard.ratelimit._limiter import Decision, Limit
    from sendguard.ratelimit._rates import parse_rates
    from sendguard.ratelimit._window import LimitState

    every = [Limit("route:GET /x", r) for r in parse_rates("5/second;100/minute;1000/day")]

    @given(
        n=st.integers(1, 3),
        remaining=st.lists(st.integers(0, 10**6), min_size=3, max_size=3),
        reset=st.lists(st.floats(0, 86400), min_size=3, max_size=3),
    )
    def check(n: int, remaining: list[int], reset: list[float]) -> None:
        limits = tuple(every[:n])
        states = tuple(
            LimitState(lim.rate, True, r, t, 0.0)
            for lim, r, t in zip(limits, remaining, reset, strict=False)
        )
        decision = Decision(True, limits, states, 0.0)
        assert ratelimit_encoder(limits)(states) == ratelimit_value(decision).encode()

    check()


def test_two_limits_on_one_window_are_refused_at_start_up():
    with pytest.raises(ConfigError, match=r"'10/minute;20/minute'.*10/60s and 20/60s"):
        RoutePolicy(limits="10/minute;20/minute")
