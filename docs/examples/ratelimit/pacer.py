"""Pacing outbound sends per recipient domain: wait for the next slot instead of refusing."""

import asyncio

from sendguard import RateLimited
from sendguard.ratelimit import Limit, Pacer, RateLimiter, parse_rates
from sendguard.testing import FakeClock

clock = FakeClock(start=0.0)  # pace() sleeps on this clock: the example runs at once

# One message a second to each receiving domain; a message waits at most 5 s for its slot.
pacer = Pacer("1/second", max_wait=5.0, clock=clock)
outbox = ["a@gmail.com", "b@gmail.com", "c@example.org", "d@gmail.com", "e@example.org"]
for address in outbox:
    domain = address.split("@", 1)[1]
    waited = pacer.pace(domain)  # returns when this domain may take another message
    print(f"t={clock.monotonic():.1f} send to {address} (waited {waited:.1f} s)")

# A wait longer than max_wait raises RateLimited; nothing was counted, so requeue it.
slow = Pacer("1/minute", max_wait=5.0, clock=clock)
slow.pace("tiny-isp.example")
try:
    slow.pace("tiny-isp.example")
except RateLimited as refused:
    print(f"refused: {refused.reason}, next slot in {refused.retry_after:.0f} s")

# Every rate spaces sends evenly: "1/second;120/hour" means one send every 30 s.
both = Pacer("1/second;120/hour", clock=clock)
print("1/second;120/hour waits:", [both.pace("aol.com") for _ in range(3)])

# burst=3: three back to back, then one a second. apace() is the coroutine form.
bursty = Pacer("1/second", burst=3, clock=clock)


async def send_five() -> list[float]:
    return [await bursty.apace("yahoo.com") for _ in range(5)]


print("burst=3 waits:", asyncio.run(send_five()))


# Why not a window: sixty sends a second apart, at exactly the rate. A sliding-window
# counter still holds each send at full weight one window later, so it refuses half.
limiter = RateLimiter(clock=clock)
per_second = [Limit("pace", rate) for rate in parse_rates("1/second")]
admitted = 0
for _ in range(60):
    admitted += limiter.check("gmail.com", per_second).allowed
    clock.advance(1.0)
paced = Pacer("1/second", clock=clock)
waits = [paced.pace("gmail.com") for _ in range(60)]
print(f"60 sends at 1/second: a window admits {admitted}; the pacer sends all in {sum(waits):g} s")
