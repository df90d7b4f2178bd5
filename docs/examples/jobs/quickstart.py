"""Quick start: refuse a fat job payload, send once per key, notice a cron job that stopped."""

import dataclasses

from sendguard.jobs import Heartbeats, Ledger, PayloadGuard, PayloadRejected
from sendguard.testing import FakeClock


@dataclasses.dataclass
class Email:
    id: int
    subject: str
    body_html: str


email = Email(4242, "Our biggest issue yet", "<p>" + "news " * 1_000_000 + "</p>")

# 1. Lean payloads: ids, not objects. The check runs before anything is serialised.
guard = PayloadGuard()
try:
    guard.check("app.jobs.send_batch", (email, [1, 2, 3]), queue="five_minutes")
except PayloadRejected as refused:
    print(f"refused: {refused}")
check = guard.check("app.jobs.send_batch", (email.id, [1, 2, 3]), queue="five_minutes")
print(f"accepted: {check.size} bytes, budget {check.budget}")

# 2. Idempotent sends: a replay of a completed key returns the recorded result.
ledger = Ledger(name="sends")


@ledger.idempotent(key="send:{message_id}")
def send(message_id: str, to: str) -> str:
    print(f"  sending {message_id} to {to}")
    return f"provider-{message_id}"


print("first:", send("m1", "a@example.com"))
print("replay:", send("m1", "a@example.com"))

# 3. Cron heartbeats: a job that stops running shows as stalled after every + grace.
clock = FakeClock()
heartbeats = Heartbeats(clock=clock)


@heartbeats.heartbeat("digest", every="5m", grace="1m")
def digest() -> None:
    clock.advance(3)  # the run takes three seconds


digest()
for wait, after in ((5 * 60, "5 min"), (60, "6 min"), (61, "7 min")):
    clock.advance(wait)
    status = heartbeats.status("digest")
    assert status is not None
    print(f"{after} after the last run: {status.state.value} {status.message}".rstrip())
