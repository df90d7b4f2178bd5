"""Circuit breakers for routes, tenants and outbound providers.

    from sendguard.breakers import Breaker, BreakerRegistry

    breakers = BreakerRegistry(Breaker.rate(0.5, slow=2.0), store="redis://localhost:6379/0")

    @breakers.protect("provider:smtp-primary")
    def send(message): ...

    breakers.force_open("route:GET /v1/emails/{id}/analytics", "analytics storm", for_=1800)

An existing `pybreaker.CircuitBreaker` can be adopted into a registry
(`BreakerRegistry.adopt`, module `sendguard.breakers.pybreaker_interop`).

See docs/breakers.md for the states, the trip conditions and the shared-store semantics.
"""

from sendguard._core.errors import BreakerOpen
from sendguard.breakers._breaker import CircuitBreaker, Stats
from sendguard.breakers._calls import BreakerCall, Guarded, protect
from sendguard.breakers._events import BreakerRejected, BreakerTransition
from sendguard.breakers._policy import Breaker, Mode, Outcome, State, Window
from sendguard.breakers._registry import BreakerInfo, BreakerRegistry, Scope, open_store
from sendguard.breakers._store import (
    AsyncBreakerStore,
    BreakerStore,
    MemoryBreakerStore,
    SharedView,
)

__all__ = [
    "AsyncBreakerStore",
    "Breaker",
    "BreakerCall",
    "BreakerInfo",
    "BreakerOpen",
    "BreakerRegistry",
    "BreakerRejected",
    "BreakerStore",
    "BreakerTransition",
    "CircuitBreaker",
    "Guarded",
    "MemoryBreakerStore",
    "Mode",
    "Outcome",
    "Scope",
    "SharedView",
    "State",
    "Stats",
    "Window",
    "open_store",
    "protect",
]
