"""Bad configuration fails when the guard is built, with a ConfigError naming the value."""

from collections.abc import Callable

from sendguard import Bulkhead, ConfigError, Guard, RoutePolicy
from sendguard.ratelimit import Pacer

attempts: dict[str, Callable[[], object]] = {
    "unparseable rate": lambda: RoutePolicy(limits="ten per fortnight"),
    "repeated rate": lambda: RoutePolicy(limits="10/second;10/second"),
    "cost below 1": lambda: RoutePolicy(cost=0),
    "negative bulkhead": lambda: Bulkhead(-1),
    "bulkhead wait": lambda: Bulkhead(4, max_wait=600),
    "unknown method": lambda: Guard(routes={"FETCH /v1/emails": RoutePolicy()}),
    "path without /": lambda: Guard(routes={"GET v1/emails": RoutePolicy()}),
    "broken parameter": lambda: Guard(routes={"GET /v1/emails/{id": RoutePolicy()}),
    "cost above limit": lambda: Guard(
        routes={"POST /v1/emails/batch": RoutePolicy(limits="5/minute", cost=10)}
    ),
    "not a policy": lambda: Guard(routes={"GET /a": "30/minute"}),  # type: ignore[dict-item]
    "bad proxy": lambda: Guard(trusted_proxies=["10.0.0.300"]),
    "store direction": lambda: Guard(on_store_failure="maybe"),  # type: ignore[arg-type]
    "unknown store": lambda: Guard("ftp://example.com"),
    "exempt baseline": lambda: Guard(baseline=RoutePolicy.exempt()),
    "pacer burst": lambda: Pacer("1/second", burst=0),
}
for what, build in attempts.items():
    try:
        build()
    except ConfigError as error:
        print(f"{what}: {error}")
    else:
        print(f"{what}: accepted?!")
