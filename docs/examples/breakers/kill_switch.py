"""The operator kill switch: force a breaker open or closed, with a reason and an expiry."""

import contextlib

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry
from sendguard.testing import FakeClock

clock = FakeClock()
registry = BreakerRegistry(Breaker.consecutive(3), clock=clock)
ROUTE = "route:GET /v1/emails/{id}/analytics"


@registry.protect(ROUTE)
def analytics(email_id: str) -> str:
    return f"analytics for {email_id}"


# Stop the route for 30 minutes, in every process sharing the store.
registry.force_open(ROUTE, "analytics storm, see incident 2025-11-06", for_=30 * 60)
try:
    analytics("em_1")
except BreakerOpen as refused:
    print(f"refused: {refused}")
    print(f"retry_after={refused.retry_after:g} reason={refused.reason}")

info = registry.info(ROUTE)
print(
    f"info: state={info.state.value} override_reason={info.override_reason!r}",
    f"override_remaining={info.override_remaining:g}",
)

clock.advance(30 * 60)  # the override lapses by itself
print("after 30 min:", analytics("em_2"))

# Keep serving a known-flaky dependency whatever happens (until cleared: no for_).
registry.force_closed(ROUTE, "vendor says errors are cosmetic")


@registry.protect(ROUTE)
def flaky(email_id: str) -> str:
    raise ConnectionError("flaky")


for n in range(5):
    with contextlib.suppress(ConnectionError):
        flaky(f"em_{n}")
print("forced closed after 5 failures:", registry.get(ROUTE).state.value)

registry.clear_override(ROUTE)  # back to the breaker's own state
print("override cleared:", registry.get(ROUTE).state.value)

registry.reset(ROUTE)  # clear any override and close with an empty window
print("reset:", registry.info(ROUTE).state.value, registry.info(ROUTE).reason)
