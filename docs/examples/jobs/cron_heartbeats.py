"""Cron heartbeats: record runs, judge them from outside cron, feed a health probe."""

import contextlib

from sendguard.health import HeartbeatProbe
from sendguard.jobs import Heartbeats
from sendguard.testing import FakeClock

clock = FakeClock()
heartbeats = Heartbeats(clock=clock)  # Heartbeats("redis://...") to share them


@heartbeats.heartbeat("check-backlog", every="1m", grace="1m")
def check_backlog() -> None:
    clock.advance(2)


@heartbeats.heartbeat("send-scheduled", every="5m", grace="1m")
def send_scheduled(fail: bool = False) -> None:
    clock.advance(20)
    if fail:
        raise ConnectionError("SMTP relay refused")


heartbeats.register("nightly-digest", every="24h", grace="1h")  # known before its first run
check_backlog()
with contextlib.suppress(ConnectionError):
    send_scheduled(fail=True)
for status in heartbeats.statuses():
    print(f"{status.name}: {status.state.value} {status.message}".rstrip())

# The scheduler dies: nothing runs any more. Something that is not cron keeps reading.
probe = HeartbeatProbe(heartbeats, "check-backlog", every=60, grace=60, clock=clock)
for minute in range(1, 4):
    clock.advance(60)
    state = heartbeats.status("check-backlog")
    assert state is not None
    print(f"+{minute} min: {state.state.value}, probe {probe.check().status.value}")
