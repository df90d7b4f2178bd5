"""A hanging probe fails at its timeout without delaying the others; old results fail."""

import threading
import time

from sendguard.health import FunctionProbe, HealthRegistry, Status
from sendguard.testing import FakeClock

never = threading.Event()


def hangs() -> bool:
    never.wait(10)  # a dependency that accepts the connection and never answers
    return True


registry = HealthRegistry(
    [FunctionProbe(hangs, "payments-api", timeout=0.5), FunctionProbe(lambda: True, "postgres")]
)
started = time.monotonic()
report = registry.check_now()
print(f"answered in about {time.monotonic() - started:.1f}s")
for check in report.checks:
    print(f"{check.name}: {check.status.value} {check.message}".rstrip())
never.set()

clock = FakeClock()
cached = HealthRegistry([FunctionProbe(lambda: True, "redis")], interval=5, clock=clock)
cached.check_now()
clock.advance(11.0)  # max age: two intervals plus the 1 s timeout
print("after 11 s:", cached.readiness().status.value)
clock.advance(0.5)
stale = cached.readiness()
print("after 11.5 s:", stale.status.value, stale.check("redis").stale)
assert stale.status is Status.FAIL
