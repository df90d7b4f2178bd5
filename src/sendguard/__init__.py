"""sendguard: drop-in reliability guards for web apps and email-sending pipelines.

Each guard answers a real incident (see docs/): circuit breakers (`sendguard.breakers`),
and, as they land, rate limits, backoff, job guards and health probes. Every guard has a
drill, ``sendguard drill NAME``, that replays its incident with and without it.
"""

from sendguard._core.clock import SYSTEM_CLOCK, Clock, SystemClock
from sendguard._core.errors import (
    BreakerOpen,
    ConfigError,
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
from sendguard.breakers import (
    Breaker,
    BreakerRegistry,
    CircuitBreaker,
    Mode,
    Outcome,
    State,
    Window,
)

__version__ = "0.1.0"

__all__ = [
    "SYSTEM_CLOCK",
    "Breaker",
    "BreakerOpen",
    "BreakerRegistry",
    "CircuitBreaker",
    "Clock",
    "ConfigError",
    "Event",
    "Hook",
    "Mode",
    "OpenTelemetryHook",
    "Outcome",
    "Rejected",
    "SendguardError",
    "State",
    "StoreRecovered",
    "StoreUnavailable",
    "StoreUnavailableEvent",
    "SystemClock",
    "Telemetry",
    "Window",
]
