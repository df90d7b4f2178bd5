"""Metrics-only (a dry run that never refuses) and disabled (a pass-through)."""

import contextlib

from sendguard import Event
from sendguard.breakers import Breaker, BreakerRegistry, BreakerTransition, Mode

events: list[Event] = []
registry = BreakerRegistry(
    Breaker.consecutive(3),
    policies={
        "route:GET /v1/emails/{id}/analytics": Breaker.consecutive(3, mode=Mode.METRICS_ONLY),
        "route:GET /healthz": Breaker.consecutive(3, mode=Mode.DISABLED),
    },
    hooks=[events.append],
)


def flaky() -> str:
    raise ConnectionError("dependency down")


for name in ("route:GET /v1/emails/{id}/analytics", "route:GET /healthz"):
    breaker = registry.get(name)
    for _ in range(5):
        with contextlib.suppress(ConnectionError):
            breaker.call(flaky)  # never refused: all five calls ran
    print(
        f"{name}: state={breaker.state.value} would_be={breaker.machine_state.value}",
        f"ran={breaker.stats.as_dict()['failure']}",
    )

for event in events:
    assert isinstance(event, BreakerTransition)
    print(f"transition: {event.breaker} {event.from_state} -> {event.to_state} ({event.reason})")
