"""Route policies and what a guarded request carries: `RoutePolicy`, `Pass`, `Refusal`.

`RoutePolicy` is the configuration value of one route; `BoundRoute` is that policy made
concrete by a `Guard` (its limits, breaker and bulkhead gate, cached per route); `Pass`
is an admitted request on its way back to `Guard.leave`; `Refusal` is a refused one with
the response the web adapters send.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from sendguard._core.errors import BreakerOpen, BulkheadFull, ConfigError, RateLimited, Rejected
from sendguard._routes import RoutePattern
from sendguard.breakers import Breaker, CircuitBreaker
from sendguard.ratelimit._bulkhead import Bulkhead, BulkheadGate
from sendguard.ratelimit._headers import (
    problem_body,
    ratelimit_fields,
    ratelimit_value,
    retry_after_value,
)
from sendguard.ratelimit._limiter import Decision, Limit
from sendguard.ratelimit._rates import Rate, parse_rates
from sendguard.ratelimit._request import KeyFunction
from sendguard.ratelimit._window import LimitState

__all__ = [
    "BoundRoute",
    "Pass",
    "Refusal",
    "RoutePolicy",
    "check_costs",
    "check_groups",
    "full_error",
    "limited_error",
    "store_refused_error",
]


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What guards one route. Unset fields (None) come from the guard's baseline.

    `limits` is a rate string (``"30/minute;5/second"``) or `Rate` values; `group` makes
    the limits count for every route of the group together; `cost` is what one request
    spends. Use `RoutePolicy.exempt()` for routes no guard should touch (health checks).
    """

    limits: str | tuple[Rate, ...] | None = None
    cost: int | None = None
    bulkhead: Bulkhead | None = None
    breaker: Breaker | None = None
    group: str | None = None
    key: KeyFunction | None = None
    is_exempt: bool = False
    rates: tuple[Rate, ...] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.limits is not None:
            object.__setattr__(self, "rates", parse_rates(self.limits))
        if self.cost is not None and (
            not isinstance(self.cost, int) or isinstance(self.cost, bool) or self.cost < 1
        ):
            raise ConfigError(f"RoutePolicy.cost must be a whole number >= 1, got {self.cost!r}")
        for name, kind in (("bulkhead", Bulkhead), ("breaker", Breaker)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"RoutePolicy.{name} must be a {kind.__name__}, got {value!r}")
        if self.group is not None and (not isinstance(self.group, str) or not self.group):
            raise ConfigError(f"RoutePolicy.group must be a non-empty name, got {self.group!r}")

    @classmethod
    def exempt(cls) -> RoutePolicy:
        """A route that no limit, breaker or bulkhead touches."""
        return cls(is_exempt=True)

    def over(self, base: RoutePolicy) -> RoutePolicy:
        """This policy with its unset fields taken from `base`."""
        if self.is_exempt:
            return self
        changes = {
            f.name: getattr(base, f.name)
            for f in dataclasses.fields(self)
            if f.init and f.name != "is_exempt" and getattr(self, f.name) is None
        }
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class BoundRoute:
    """A route's policy made concrete: its limits, breaker and bulkhead gate."""

    name: str
    policy: RoutePolicy
    limits: tuple[Limit, ...]
    cost: int
    breaker: CircuitBreaker | None
    gate: BulkheadGate | None
    key: KeyFunction
    exempt: bool = False
    policy_header: str = ""
    """The RateLimit-Policy value (the same for every request of the route)."""
    policy_field: tuple[bytes, bytes] = (b"", b"")
    """The same, as an encoded ASGI header."""
    encode_ratelimit: Callable[[tuple[LimitState, ...]], bytes] | None = None
    """The ``RateLimit`` value of these limits' states, encoded (see `ratelimit_encoder`)."""
    outcomes: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    """Requests admitted, limited, refused by the breaker, refused by the bulkhead."""


@dataclass(slots=True)
class Pass:
    """An admitted request: hand it back to `Guard.leave` when the call ends."""

    route: BoundRoute
    decision: Decision
    ticket: int
    start: float
    slot: object | None
    """The bulkhead slot held (give it back in `leave`), or None."""

    def headers(self) -> list[tuple[str, str]]:
        """The RateLimit fields for the response."""
        return ratelimit_fields(self.decision, self.route.policy_header)

    def asgi_headers(self) -> list[tuple[bytes, bytes]]:
        """The RateLimit fields as encoded ASGI headers (lower-case names)."""
        decision, route = self.decision, self.route
        if not decision.limits:
            return []
        if route.encode_ratelimit is None:
            return [route.policy_field, (b"ratelimit", ratelimit_value(decision).encode())]
        return [route.policy_field, (b"ratelimit", route.encode_ratelimit(decision.states))]


class Refusal(Exception):
    """A refused request with the response to send (429 or 503), for the web adapters."""

    def __init__(self, error: Rejected, decision: Decision | None, route: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.route = route
        limited = isinstance(error, RateLimited)
        self.status = 429 if limited else 503
        kind = (
            "rate-limited"
            if limited
            else "breaker-open"
            if isinstance(error, BreakerOpen)
            else "bulkhead-full"
        )
        title = "Too Many Requests" if limited else "Service Unavailable"
        self.body = problem_body(
            self.status, kind, title, str(error), error.retry_after, (("route", route),)
        )
        self.headers: list[tuple[str, str]] = [
            ("Content-Type", "application/problem+json"),
            ("Retry-After", retry_after_value(error.retry_after)),
            *(ratelimit_fields(decision) if decision is not None else []),
        ]


def limited_error(decision: Decision) -> RateLimited:
    """The error of a request its first full limit refused."""
    limit = next(
        lim for lim, s in zip(decision.limits, decision.states, strict=True) if not s.allowed
    )
    return RateLimited(
        f"rate limit {limit.rate.label} on {limit.scope} reached; "
        f"retry in {decision.retry_after:.1f}s",
        retry_after=decision.retry_after,
        key=limit.scope,
        policy=limit,
        reason="limited",
    )


def store_refused_error(route: BoundRoute, decision: Decision, limiter: object) -> RateLimited:
    """The error of a request refused because the store is away (``on_store_failure="deny"``)."""
    return RateLimited(
        "the rate-limit store is unavailable and this guard refuses when it is "
        "(on_store_failure='deny')",
        retry_after=decision.retry_after,
        key=route.name,
        policy=limiter,
        reason="store_unavailable",
    )


def full_error(route: BoundRoute) -> BulkheadFull:
    """The error of a request its route's full bulkhead refused."""
    gate = route.gate
    assert gate is not None
    return BulkheadFull(
        f"bulkhead of {route.name} is full ({gate.capacity} in flight)",
        retry_after=gate.retry_after(),
        key=route.name,
        policy=gate.policy,
        reason="full",
    )


def check_costs(where: str, policy: RoutePolicy, app: tuple[Limit, ...]) -> None:
    cost = policy.cost or 1
    for rate in (*(policy.rates or ()), *(lim.rate for lim in app)):
        if cost > rate.amount:
            raise ConfigError(
                f"{where}: a request costs {cost}, more than the whole limit {rate.label}"
            )


def check_groups(patterns: list[tuple[RoutePattern, RoutePolicy]]) -> None:
    """The routes of a group share one bulkhead, so they must configure the same one."""
    seen: dict[str, tuple[str, Bulkhead | None]] = {}
    for pattern, policy in patterns:
        if policy.group is None:
            continue
        first = seen.setdefault(policy.group, (pattern.text, policy.bulkhead))
        if first[1] != policy.bulkhead:
            raise ConfigError(
                f"routes {first[0]!r} and {pattern.text!r} of group {policy.group!r} set "
                f"different bulkheads ({first[1]!r} vs {policy.bulkhead!r}); a group shares one"
            )
