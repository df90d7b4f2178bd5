"""Heartbeats (a job says it ran) and a traffic floor (fewer requests than expected)."""

from sendguard.health import (
    HealthRegistry,
    HeartbeatProbe,
    MemoryHeartbeats,
    TrafficCounter,
    TrafficFloorProbe,
)
from sendguard.testing import FakeClock

clock = FakeClock()
beats = MemoryHeartbeats(clock)  # RedisHeartbeats("redis://...") shares them across processes
clicks = TrafficCounter(window=300, clock=clock)
registry = HealthRegistry(
    [
        HeartbeatProbe(beats, "send-digest", every=300, grace=60, clock=clock),
        TrafficFloorProbe(clicks, minimum=100, name="tracked-clicks"),
    ],
    clock=clock,
    interval=60,
)

beats.beat("send-digest")  # the cron job ends with `sendguard health beat send-digest`
for _ in range(250):
    clicks.record()
clock.advance(300)
beats.beat("send-digest")
clicks.record(180)
print(registry.check_now().summary())

clock.advance(400)  # the digest job stopped beating; clicks stopped arriving
print(registry.check_now().summary())
