"""Any `limits` storage as the backend (memcached://, mongodb://, ...), and what it costs.

The `limits` library's own memory:// storage stands in for memcached here, so the example
runs anywhere; with a server, pass its URI: RateLimiter("memcached://cache:11211").
"""

from sendguard.ratelimit import (
    Limit,
    LimitsLibraryBackend,
    MemoryLimitBackend,
    RateLimiter,
    parse_rates,
)
from sendguard.testing import FakeClock

rules = [Limit("route:POST /v1/emails", rate) for rate in parse_rates("5/minute;2/second")]
clock = FakeClock(start=0.0)
backends = {
    "sendguard memory": RateLimiter(MemoryLimitBackend(clock), clock=clock),
    "limits memory://": RateLimiter(LimitsLibraryBackend("memory://")),
}
for name, limiter in backends.items():
    decisions = [limiter.check("acct_acme", rules) for _ in range(4)]
    allowed = [d.allowed for d in decisions]
    minute = [d.states[0].remaining for d in decisions]  # the 5/minute limit
    print(f"{name}: allowed={allowed} 5/minute remaining={minute}")
