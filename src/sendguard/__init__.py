"""sendguard: drop-in reliability guards for web apps and email-sending pipelines.

Each guard answers a real incident (see docs/): circuit breakers (`sendguard.breakers`),
rate limits and bulkheads composed per route by `Guard` (`sendguard.ratelimit`, with
`sendguard.asgi` and `sendguard.wsgi` middleware), jittered retries, budgets and pollers
(`sendguard.backoff`), job guards (`sendguard.jobs`) and health probes (`sendguard.health`);
`sendguard.pipeline` is a reference sending pipeline built from them. Every guard has a
drill, ``sendguard drill NAME``, that replays its incident with and without it.
"""

from sendguard._core.clock import SYSTEM_CLOCK, Clock, SystemClock
from sendguard._core.errors import (
    BreakerOpen,
    BulkheadFull,
    ConfigError,
    RateLimited,
    Rejected,
    SendguardError,
    StoreUnavailable,
)
from sendguard._core.telemetry import (
    Event,
    Hook,
    OpenTelemetryHook,
    StoreRecovered,
    StoreUnavailableEvent,
    Telemetry,
)
from sendguard._guard import Guard, Refusal, RoutePolicy
from sendguard._guard_events import RequestRefused
from sendguard.backoff import Jitter, PollTimeout, RetryBudget, RetryPolicy
from sendguard.breakers import (
    Breaker,
    BreakerRegistry,
    CircuitBreaker,
    Mode,
    Outcome,
    State,
    Window,
)
from sendguard.ratelimit import Bulkhead

__version__ = "0.1.0"

__all__ = [
    "SYSTEM_CLOCK",
    "Breaker",
    "BreakerOpen",
    "BreakerRegistry",
    "Bulkhead",
    "BulkheadFull",
    "CircuitBreaker",
    "Clock",
    "ConfigError",
    "Event",
    "Guard",
    "Hook",
    "Jitter",
    "Mode",
    "OpenTelemetryHook",
    "Outcome",
    "PollTimeout",
    "RateLimited",
    "Refusal",
    "Rejected",
    "RequestRefused",
    "RetryBudget",
    "RetryPolicy",
    "RoutePolicy",
    "SendguardError",
    "State",
    "StoreRecovered",
    "StoreUnavailable",
    "StoreUnavailableEvent",
    "SystemClock",
    "Telemetry",
    "Window",
]
