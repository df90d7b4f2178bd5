"""Open, half-open and closed again: probes, open-time backoff and the maximum wait."""

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry
from sendguard.testing import FakeClock

clock = FakeClock()
policy = Breaker.consecutive(
    2,
    open_for=10,  # first opening: 10 s
    open_backoff=2,  # each reopening in a row doubles it ...
    max_open_for=60,  # ... up to 60 s
    open_jitter=0,  # no spread, so this example prints exact figures (default 0.1: +-10 %)
    half_open_calls=2,  # two probe calls must succeed to close it
    half_open_max_wait=30,  # with every permit out, 30 s without news from a probe reopens it
)
registry = BreakerRegistry(policy, clock=clock)
breaker = registry.provider("smtp-primary")
healthy = False


def deliver() -> str:
    if not healthy:
        raise ConnectionError("connection refused")
    return "250 OK"


def attempt(label: str) -> None:
    try:
        print(f"{label}: {breaker.call(deliver)} ({breaker.state.value})")
    except BreakerOpen as refused:
        print(f"{label}: refused ({refused.reason}), retry in {refused.retry_after:g} s")
    except ConnectionError:
        print(f"{label}: failed ({breaker.state.value})")


attempt("t=0")
attempt("t=0")  # the second failure in a row trips it: open for 10 s
clock.advance(4)
attempt("t=4")
clock.advance(6)
attempt("t=10")  # open time over: this call is a probe, it fails, reopen for 20 s
clock.advance(20)
healthy = True
attempt("t=30")  # probe 1 succeeds; the breaker stays half-open

with breaker.guard():  # probe 2 is running; both permits are out
    try:
        with breaker.guard():  # so any other call is refused at once
            pass
    except BreakerOpen as refused:
        print(f"t=30: another call refused ({refused.reason}), retry in {refused.retry_after:g} s")
# Leaving the block reported probe 2's success: both probes succeeded, so it is closed.
print("t=30:", breaker.state.value, "| reason:", registry.info(breaker.name).reason)

# With every probe permit out and no probe heard from for half_open_max_wait, it reopens
# (a probe hung, or its process died). A quiet route that just sees few calls waits.
healthy = False
attempt("t=30")
attempt("t=30")  # tripped again: reopenings start from zero after a close, so 10 s
clock.advance(10)
first = breaker.admit(clock.monotonic())  # two probes that hang and never report
second = breaker.admit(clock.monotonic())
clock.advance(31)
attempt("t=71")
print("t=71:", breaker.state.value, "| reason:", registry.info(breaker.name).reason)
