"""Two workers sharing breaker state through Redis (run against a scratch Redis).

    SENDGUARD_STORE=redis://localhost:6379/0 python docs/examples/breakers/shared_redis.py

The two registries stand for two worker processes; a FakeClock drives their refresh
schedule so the example does not wait. Open times are measured by the Redis server.
"""

import contextlib
import os

import redis

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry
from sendguard.testing import FakeClock

URL = os.environ.get("SENDGUARD_STORE", "redis://localhost:6379/0")
NAME = "provider:smtp-primary"
clock = FakeClock()
policy = Breaker.consecutive(3, open_for=30)
worker_a = BreakerRegistry(policy, store=URL, clock=clock, sync_interval=0.5)
worker_b = BreakerRegistry(policy, store=URL, clock=clock, sync_interval=0.5)


def smtp_down() -> str:
    raise ConnectionError("connection refused")


def smtp_up() -> str:
    return "250 OK"


print("b:", worker_b.get(NAME).call(smtp_up))  # b reads the shared state on its first call

for _ in range(3):  # a trips the breaker: one round trip publishes the trip
    with contextlib.suppress(ConnectionError):
        worker_a.get(NAME).call(smtp_down)
print("a:", worker_a.get(NAME).state.value)

print("b, same instant:", worker_b.get(NAME).call(smtp_up))  # b's view is up to 0.5 s old
clock.advance(0.5)  # b's next call refreshes its view
try:
    worker_b.get(NAME).call(smtp_up)
except BreakerOpen as refused:
    print(f"b, 0.5 s later: refused, retry in about {refused.retry_after:.0f} s")

# The operator kill switch reaches every worker the same way.
worker_a.force_open("route:GET /v1/emails/{id}/analytics", "analytics storm", for_=1800)
clock.advance(0.5)
try:
    worker_b.get("route:GET /v1/emails/{id}/analytics").call(smtp_up)
except BreakerOpen as refused:
    print(f"b: analytics {refused.reason}")

for info in worker_b.list():
    print(f"list: {info.name} {info.state.value} {info.reason or info.override_reason}")

# What is in Redis: a sorted set of names, and a hash per breaker that changed state.
client = redis.Redis.from_url(URL, decode_responses=True)
keys = sorted(str(k) for k in client.scan_iter("sendguard:*"))
for key in keys:
    print("key:", key, client.type(key))
state_key = next(k for k in keys if k.startswith("sendguard:{breaker:provider_smtp"))
fields: dict[str, str] = client.hgetall(state_key)  # type: ignore[assignment]
print("fields:", sorted(fields))

# Tidy up the scratch keys.
for name in (NAME, "route:GET /v1/emails/{id}/analytics"):
    worker_a.reset(name)
client.delete(*keys)
client.close()
