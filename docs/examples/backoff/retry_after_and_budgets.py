"""Retry-After is a floor on the wait; a retry budget caps what an outage costs the server."""

import httpx

from sendguard.backoff import (
    RetryBudget,
    RetryPolicy,
    RetryTransport,
    parse_ratelimit_reset,
    parse_retry_after,
)
from sendguard.testing import FakeClock

# What servers say, and what sendguard reads from it (None: malformed, ignored).
for value in ("120", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-3"):
    print(f"Retry-After: {value!r} -> {parse_retry_after(value, now=1445412470.0)}")
print("RateLimit t ->", parse_ratelimit_reset('"default";r=0;t=30'))

# A 429 with Retry-After: 4 is waited out (plus up to 10 % so clients do not return
# together); the fake clock lets the example run without really waiting.
clock = FakeClock()
busy = iter([httpx.Response(429, headers={"Retry-After": "4"}), httpx.Response(200)])
transport = RetryTransport(httpx.MockTransport(lambda r: next(busy)), clock=clock)
with httpx.Client(transport=transport) as client:
    started = clock.monotonic()
    status = client.get("https://api.mail.example/v1/domains").status_code
    print(f"429 then {status}; waited {clock.monotonic() - started:.1f} s (>= 4)")

# A total outage: 100 calls, 3 attempts each. Without a budget the server would get 300
# requests; with one, each call tries once and only the bucket's 10 tokens buy retries.
received: list[httpx.Request] = []


def down(request: httpx.Request) -> httpx.Response:
    received.append(request)
    return httpx.Response(503)


policy = RetryPolicy(attempts=3, budget=RetryBudget(capacity=10, ratio=0.1))
transport = RetryTransport(httpx.MockTransport(down), policy, clock=FakeClock())
with httpx.Client(transport=transport) as client:
    for n in range(100):
        client.get(f"https://api.mail.example/v1/emails/{n}")
print(f"outage: 100 calls -> {len(received)} requests (amplification {len(received) / 100:.2f})")
print("budget refused", transport.stats.budget_exhausted, "retries")
