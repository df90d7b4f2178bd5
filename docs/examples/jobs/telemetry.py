"""Telemetry: rejections, ledger decisions and heartbeats as events; sizes as metrics."""

import contextlib

from sendguard import Event, Hook, OpenTelemetryHook
from sendguard.jobs import Heartbeats, Ledger, PayloadGuard, PayloadRejected
from sendguard.testing import FakeClock


def log_event(event: Event) -> None:
    fields = {name: getattr(event, name) for name in event.attributes}
    print(f"event {event.kind} {fields}")


hooks: list[Hook] = [OpenTelemetryHook(), log_event]  # keep the metrics, add your own hook
guard = PayloadGuard(hooks=hooks)
guard.check("app.jobs.send", (4242, [1, 2, 3]), queue="five_minutes")
with contextlib.suppress(PayloadRejected):
    guard.check("app.jobs.send", (object(), [1]), queue="five_minutes")
print("sizes:", guard.stats())

ledger = Ledger(name="sends", hooks=hooks)
for _ in range(2):
    with ledger.idempotent("send:m1", payload=1) as call:
        if not call.replayed:
            call.complete("provider-m1")

clock = FakeClock()
with Heartbeats(clock=clock, hooks=hooks).heartbeat("digest", every="5m"):
    clock.advance(3)
