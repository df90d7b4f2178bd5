"""The idempotency ledger: replays, duplicates in flight, failures and unknown outcomes."""

from sendguard.jobs import AlreadyInProgress, Ledger, OutcomeUnknown, PayloadMismatch
from sendguard.testing import FakeClock

clock = FakeClock()
ledger = Ledger(name="sends", clock=clock)  # in memory here; Redis or Postgres to share it
sent: list[str] = []


class Refused(Exception):
    """The provider said no before DATA: surely not sent."""


# The payload identifies the message (the recipient), not how the provider happens to answer.
@ledger.idempotent(
    key="send:{message_id}", payload=lambda message_id, to, provider_says="": {"to": to}
)
def send(message_id: str, to: str, provider_says: str = "250 OK") -> str:
    if provider_says.startswith("550"):
        raise Refused(provider_says)
    sent.append(message_id)  # the provider has it now
    if provider_says == "dropped":
        raise TimeoutError("connection dropped after DATA")
    return f"provider-{message_id}"


def attempt(message_id: str, to: str, provider_says: str = "250 OK") -> str:
    try:
        return send(message_id, to, provider_says)
    except (Refused, TimeoutError, OutcomeUnknown, PayloadMismatch) as error:
        return type(error).__name__


print("m1:", attempt("m1", "a@example.com"), "| replay:", attempt("m1", "a@example.com"))
print("m1 to someone else:", attempt("m1", "b@example.com"))
print(
    "m2:",
    attempt("m2", "c@example.com", "550 mailbox unavailable"),
    "| again:",
    attempt("m2", "c@example.com"),
)
print("m3:", attempt("m3", "d@example.com", "dropped"), "| again:", attempt("m3", "d@example.com"))

# A duplicate while the first attempt runs is refused; a worker killed mid-send leaves its
# key in progress, and once its lease runs out the outcome is unknown.
with ledger.idempotent("send:m4", payload={"to": "e@example.com"}) as call:
    try:
        with ledger.idempotent("send:m4", payload={"to": "e@example.com"}):
            pass
    except AlreadyInProgress as busy:
        print(f"m4 in flight: refused, retry in {busy.retry_after:.0f}s")
    call.unknown("worker killed after handing the message over")

print("for an operator:", [(entry.key, entry.detail) for entry in ledger.unknowns()])
ledger.resolve("send:m3", completed=True, note="in the provider's log")
ledger.resolve("send:m4", completed=False, note="not in the provider's log")
print("m3 after resolve:", attempt("m3", "d@example.com"), "| m4:", attempt("m4", "e@example.com"))
print("the provider got:", sent)
