"""`Guard`: one object holding every route's limits, bulkhead and breaker.

A request is reduced to its route (a configured pattern or the framework's template,
never the raw path), then checked in order: the rate limits (one store round trip for
all of them; 429 when one has no room), the route's circuit breaker (503 when open),
the route's bulkhead (503 when full after its bounded wait). When the call ends, its
status and duration feed the breaker and the bulkhead slot is given back. The same
`Guard` serves the ASGI and WSGI middleware, the decorators and the command line.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import BreakerOpen, ConfigError, Rejected
from sendguard._core.store import REDIS_SCHEMES
from sendguard._core.telemetry import Hook, register_observable
from sendguard._guard_decorators import route_decorator
from sendguard._guard_events import RequestRefused
from sendguard._route_policy import (
    BoundRoute,
    Pass,
    Refusal,
    RoutePolicy,
    check_costs,
    check_groups,
    full_error,
    limited_error,
    store_refused_error,
)
from sendguard._routes import RoutePattern, catch_all, parse_pattern
from sendguard.breakers import Breaker, BreakerRegistry, Outcome
from sendguard.ratelimit._bulkhead import Bulkhead, BulkheadGate
from sendguard.ratelimit._headers import policy_value, ratelimit_encoder
from sendguard.ratelimit._limiter import NO_LIMITS, Decision, Limit, OnStoreFailure, RateLimiter
from sendguard.ratelimit._rates import parse_rates
from sendguard.ratelimit._request import (
    KeyFunction,
    RequestInfo,
    TrustedProxies,
    by_api_key,
    resolve_client_ip,
)

__all__ = ["Guard", "Pass", "Refusal", "RoutePolicy"]

F = TypeVar("F", bound=Callable[..., Any])


class Guard:
    """Limits, bulkheads and breakers for every route of an app, from one configuration.

    Args:
        store: None for in-process state, or ``"redis://..."`` shared by every worker.
        baseline: the policy of every route (routes override it field by field).
        routes: ``{"POST /v1/emails": RoutePolicy(limits="30/minute"), ...}``.
        key: who a request counts for (default: its Authorization header, else its IP).
        app_limits: a rate for the whole app per key, on top of the route's.
        trusted_proxies: addresses/CIDRs whose X-Forwarded-For / Forwarded is believed.
        on_store_failure: ``"local"`` (default), ``"allow"`` or ``"deny"`` when Redis is away.
    """

    def __init__(
        self,
        store: str | None = None,
        *,
        baseline: RoutePolicy | None = None,
        routes: Mapping[str, RoutePolicy] | None = None,
        key: KeyFunction = by_api_key,
        app_limits: str | None = None,
        trusted_proxies: Sequence[str] = (),
        hooks: Sequence[Hook] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        on_store_failure: OnStoreFailure = "local",
        breakers: BreakerRegistry | None = None,
    ) -> None:
        self.store = store
        self.baseline = baseline or RoutePolicy()
        if self.baseline.is_exempt:
            raise ConfigError("the baseline cannot be exempt: exempt routes one by one")
        self.clock = clock
        self.key = key
        self.trusted = TrustedProxies(trusted_proxies)
        self.app_limits = (
            tuple(Limit("app", r) for r in parse_rates(app_limits)) if app_limits else ()
        )
        self.patterns: list[tuple[RoutePattern, RoutePolicy]] = []
        for text, policy in (routes or {}).items():
            if not isinstance(policy, RoutePolicy):
                raise ConfigError(f"routes[{text!r}] must be a RoutePolicy, got {policy!r}")
            self.patterns.append((parse_pattern(text), policy.over(self.baseline)))
        self.patterns.sort(key=lambda item: item[0].specificity)
        self._by_name = {p.text: policy for p, policy in self.patterns}
        for pattern, policy in self.patterns:
            check_costs(pattern.text, policy, self.app_limits)
        check_costs("baseline", self.baseline, self.app_limits)
        self.limiter = RateLimiter(
            store, clock=clock, hooks=hooks, on_store_failure=on_store_failure
        )
        self.telemetry = self.limiter.telemetry
        self._limits_in_process = self.limiter.in_process
        self.breakers = breakers or BreakerRegistry(
            self.baseline.breaker or Breaker(),
            store=store if store is not None and store.startswith(REDIS_SCHEMES) else None,
            clock=clock,
            hooks=hooks,
            policies={f"route:{p.text}": pol.breaker for p, pol in self.patterns if pol.breaker},
        )
        self._lock = threading.Lock()
        self._bound: dict[str, BoundRoute] = {}
        self._gates: dict[str, BulkheadGate] = {}
        check_groups(self.patterns)
        register_observable(
            "sendguard.guard.decisions",
            self,
            "Requests by route and decision",
            "{request}",
            _read_outcomes,
        )
        register_observable(
            "sendguard.bulkhead.in_flight",
            self,
            "Calls holding a bulkhead slot",
            "{call}",
            _read_in_flight,
            counter=False,
        )

    # --- routes -------------------------------------------------------------------------

    def route_name(self, method: str, path: str, template: str | None = None) -> str:
        """The route a request belongs to: ``"GET /v1/emails/{id}"`` or ``"GET *"``.

        Methods outside the standard set are named ``OTHER``, so invented methods cannot
        mint new routes (and new breakers, gates and metric series).
        """
        method = method.upper()
        if method not in KNOWN_METHODS:
            method = "OTHER"
        if template is not None:
            return f"{method} {template}"
        for pattern, _ in self.patterns:
            if pattern.matches(method, path):
                return pattern.text if pattern.method != "*" else f"{method} {pattern.text[2:]}"
        return catch_all(method)

    def policy_for(self, route: str) -> RoutePolicy:
        """The effective policy of a route name."""
        found = self._by_name.get(route)
        if found is None:
            method, _, path = route.partition(" ")
            found = self._by_name.get(f"* {path}")
        if found is None and route.split(" ", 1)[-1] != "*":
            method, _, path = route.partition(" ")
            for pattern, policy in self.patterns:
                if pattern.matches(method, path.replace("{", "").replace("}", "")):
                    found = policy
                    break
        return found or self.baseline

    def bound(self, route: str) -> BoundRoute:
        """The concrete guards of `route` (made once, then cached)."""
        found = self._bound.get(route)
        if found is not None:
            return found
        policy = self.policy_for(route)
        scope = f"group:{policy.group}" if policy.group else f"route:{route}"
        rates = () if policy.is_exempt else (policy.rates or ())
        limits = () if policy.is_exempt else (*self.app_limits, *(Limit(scope, r) for r in rates))
        breaker = None
        if policy.breaker is not None and not policy.is_exempt:
            breaker = self.breakers.get(f"route:{route}", policy=policy.breaker)
        with self._lock:
            found = self._bound.get(route)
            if found is not None:
                return found
            gate = None
            if policy.bulkhead is not None and not policy.is_exempt:
                gate_name = f"group:{policy.group}" if policy.group else route
                gate = self._gates.get(gate_name)
                if gate is None:
                    gate = self._gates[gate_name] = self._make_gate(gate_name, policy.bulkhead)
            made = self._bound[route] = BoundRoute(
                name=route,
                policy=policy,
                limits=limits,
                cost=policy.cost or 1,
                breaker=breaker,
                gate=gate,
                key=policy.key or self.key,
                exempt=policy.is_exempt,
                policy_header=policy_value(limits) if limits else "",
                policy_field=(b"ratelimit-policy", policy_value(limits).encode("latin-1"))
                if limits
                else (b"", b""),
                encode_ratelimit=ratelimit_encoder(limits) if limits else None,
            )
            return made

    def _make_gate(self, name: str, policy: Bulkhead) -> BulkheadGate:
        if policy.shared and self.store is not None and self.store.startswith(REDIS_SCHEMES):
            from sendguard.ratelimit.redis_bulkhead import SharedBulkheadGate

            return SharedBulkheadGate(name, policy, self.store, self.telemetry, clock=self.clock)
        return BulkheadGate(name, policy)

    # --- requests -----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        peer: str | None,
        template: str | None = None,
        *,
        route: str | None = None,
    ) -> RequestInfo:
        """Describe a request (headers with lower-case names) for `enter`."""
        return RequestInfo(
            method.upper(),
            path,
            route or self.route_name(method, path, template),
            headers,
            resolve_client_ip(peer, headers, self.trusted),
        )

    def _refuse(self, route: BoundRoute, error: Rejected, decision: Decision | None) -> Refusal:
        reason = type(error).__name__
        route.outcomes[_OUTCOME_SLOTS.get(reason, 3)] += 1
        self.telemetry.emit(RequestRefused(route=route.name, reason=reason))
        return Refusal(error, decision, route.name)

    def _limited(self, route: BoundRoute, decision: Decision) -> Refusal:
        if decision.store_refused:
            return self._refuse(route, store_refused_error(route, decision, self.limiter), None)
        return self._refuse(route, limited_error(decision), decision)

    def key_of(self, route: BoundRoute, request: RequestInfo) -> str:
        """The key `request` counts under on `route`: its key function's answer, or the
        client address when that gives nothing (or fails: a key function's bug must not
        fail the request)."""
        try:
            found = route.key(request)
        except Exception:
            found = None
        return str(found) if found else f"ip:{request.client_ip}"

    def enter(
        self, request: RequestInfo, key: str | None = None, bound: BoundRoute | None = None
    ) -> Pass:
        """Admit `request` or raise `Refusal` (synchronous code: WSGI, decorators).

        `key` overrides what the route's key function would say.
        """
        route = bound or self.bound(request.route)
        return self.admit(route, self._who(route, request, key))

    def admit(self, route: BoundRoute, key: str) -> Pass:
        """Admit a call of `route` counted under `key`, or raise `Refusal` (what `enter`
        does once it knows the route and the key; a route without limits ignores `key`)."""
        start = self.clock.monotonic()
        if route.limits:
            decision = self.limiter.check(key, route.limits, route.cost)
            if not decision.allowed:
                raise self._limited(route, decision)
        else:
            decision = NO_LIMITS
        breaker, ticket = route.breaker, -1
        if breaker is not None:
            try:
                ticket = breaker.admit(start)
            except BreakerOpen as error:
                raise self._refuse(route, error, decision) from None
        slot = None
        if route.gate is not None:
            try:
                slot = route.gate.enter()
            finally:
                if slot is None and breaker is not None:  # refused or interrupted
                    breaker.finish(ticket, Outcome.IGNORED, 0.0)
            if slot is None:
                raise self._refuse(route, full_error(route), decision)
        route.outcomes[0] += 1
        return Pass(route, decision, ticket, start, slot)

    async def aenter(
        self, request: RequestInfo, key: str | None = None, bound: BoundRoute | None = None
    ) -> Pass:
        """`enter` for coroutines (ASGI): store round trips and waits are awaited."""
        route = bound or self.bound(request.route)
        return await self.aadmit(route, self._who(route, request, key))

    def _who(self, route: BoundRoute, request: RequestInfo, key: str | None) -> str:
        if key is not None:
            return key
        return self.key_of(route, request) if route.limits else ""  # nothing counted, no key

    async def aadmit(self, route: BoundRoute, key: str) -> Pass:
        """`admit` for coroutines.

        Steps that need no I/O (counts in process, a plainly closed breaker, a free local
        bulkhead slot) are taken without awaiting.
        """
        start = self.clock.monotonic()
        if route.limits:
            limiter = self.limiter
            if self._limits_in_process:
                decision = limiter.check(key, route.limits, route.cost)
            else:
                decision = await limiter.acheck(key, route.limits, route.cost)
            if not decision.allowed:
                raise self._limited(route, decision)
        else:  # no limit on this route: nothing to count
            decision = NO_LIMITS
        breaker, ticket = route.breaker, -1
        if breaker is not None:
            fast = breaker.admit_fast(start)
            if fast is not None:
                ticket = fast
            else:
                try:
                    ticket = await breaker.aadmit(start)
                except BreakerOpen as error:
                    raise self._refuse(route, error, decision) from None
        slot = None
        gate = route.gate
        if gate is not None:
            slot = gate.try_enter()
            if slot is None:
                try:
                    slot = await gate.aenter()
                finally:
                    if slot is None and breaker is not None:  # refused or cancelled
                        breaker.finish(ticket, Outcome.IGNORED, 0.0)
                if slot is None:
                    raise self._refuse(route, full_error(route), decision)
        route.outcomes[0] += 1
        return Pass(route, decision, ticket, start, slot)

    def _outcome(self, p: Pass, status: int | None, error: BaseException | None) -> Outcome:
        breaker = p.route.breaker
        assert breaker is not None
        if error is not None:
            return breaker.policy.classify_exception(error)
        if breaker.policy.classify_result is not None:
            return breaker.outcome_of(status)
        return Outcome.FAILURE if status is not None and status >= 500 else Outcome.SUCCESS

    def leave(self, p: Pass, status: int | None, error: BaseException | None = None) -> None:
        """The call admitted by `enter` ended with `status` (or raised `error`)."""
        if p.slot is not None and p.route.gate is not None:
            p.route.gate.leave(p.slot)
        if p.route.breaker is not None:
            elapsed = self.clock.monotonic() - p.start
            p.route.breaker.finish(p.ticket, self._outcome(p, status, error), elapsed)

    def leave_fast(self, p: Pass, status: int | None) -> bool:
        """Finish a call that returned `status` without awaiting, when nothing needs I/O
        (a local bulkhead slot, a plain breaker success). False when `aleave` must do it;
        then nothing was done."""
        gate = p.route.gate
        if p.slot is not None and gate is not None and not gate.local:
            return False
        breaker = p.route.breaker
        if breaker is not None:
            if (status is not None and status >= 500) or breaker.policy.classify_result is not None:
                return False
            if not breaker.finish_fast(p.ticket, Outcome.SUCCESS, self.clock.monotonic() - p.start):
                return False
        if p.slot is not None and gate is not None:
            gate.leave(p.slot)
        return True

    async def aleave(self, p: Pass, status: int | None, error: BaseException | None = None) -> None:
        """`leave` for coroutines."""
        gate = p.route.gate
        if p.slot is not None and gate is not None:
            if gate.local:
                gate.leave(p.slot)
            else:
                await gate.aleave(p.slot)
        breaker = p.route.breaker
        if breaker is not None:
            elapsed = self.clock.monotonic() - p.start
            if error is None and breaker.policy.classify_result is None:  # the usual case
                outcome = Outcome.SUCCESS if status is None or status < 500 else Outcome.FAILURE
            else:
                outcome = self._outcome(p, status, error)
            if not breaker.finish_fast(p.ticket, outcome, elapsed):
                await breaker.afinish(p.ticket, outcome, elapsed)

    def route(self, pattern: str, *, key: Callable[..., object] | None = None) -> Callable[[F], F]:
        """Decorate a handler (``def`` or ``async def``) with the policy of route `pattern`.

        `key` maps the handler's arguments to the key its limits count for (its result
        is turned into a string; if it raises, the call counts under the route's shared
        key); without it the route's limits are shared by all callers. A refused call
        raises the `Rejected` error (`RateLimited`, `BreakerOpen`, `BulkheadFull`) with
        `retry_after`. A returned object with a ``status_code`` (a framework response)
        feeds its status to the breaker.
        """
        return route_decorator(self, pattern, key)

    def exempt(self, route: str) -> bool:
        """True when `route` is exempt (no guard runs, no headers are added)."""
        return self.bound(route).exempt

    def close(self) -> None:
        """Release store connections."""
        for resource in (self.limiter.backend, self.breakers.store, *self._gates.values()):
            getattr(resource, "close", lambda: None)()

    async def aclose(self) -> None:
        """Release store connections, asyncio ones included (the ASGI middleware calls
        this on lifespan shutdown)."""
        await self.limiter.aclose()
        for resource in (self.breakers.store, *self._gates.values()):
            closer = getattr(resource, "aclose", None)
            if closer is not None:
                await closer()
            else:
                getattr(resource, "close", lambda: None)()


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"})
_OUTCOME_SLOTS = {"RateLimited": 1, "BreakerOpen": 2, "BulkheadFull": 3}
_OUTCOME_NAMES = ("admitted", "limited", "breaker_open", "bulkhead_full")


def _read_outcomes(guard: Guard) -> list[tuple[float, dict[str, str]]]:
    return [
        (count, {"route": route.name, "decision": name})
        for route in list(guard._bound.values())
        for name, count in zip(_OUTCOME_NAMES, route.outcomes, strict=True)
        if count
    ]


def _read_in_flight(guard: Guard) -> list[tuple[float, dict[str, str]]]:
    return [(gate.in_flight, {"bulkhead": name}) for name, gate in list(guard._gates.items())]
