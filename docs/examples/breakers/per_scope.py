"""One breaker per route, tenant or provider; policies by name, then by scope; the LRU bound."""

import contextlib

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry

registry = BreakerRegistry(
    Breaker.rate(0.5, slow=2.0),  # everything else
    policies={
        # one route, by its exact breaker name
        "route:GET /v1/emails/{id}/analytics": Breaker.rate(0.25, slow=0.5),
        # every tenant breaker
        "tenant:*": Breaker.consecutive(5),
    },
    max_breakers=1000,  # at most 1000 breakers in this process; least recently used go first
)

analytics = registry.route("GET /v1/emails/{id}/analytics")
archive = registry.route("GET /archive/{slug}")
acme = registry.tenant("acct_acme")
print(analytics.name, "->", analytics.policy.failure_rate, analytics.policy.slow_call_duration)
print(archive.name, "->", archive.policy.failure_rate, archive.policy.slow_call_duration)
print(acme.name, "-> consecutive", acme.policy.consecutive_failures)
assert registry.provider("smtp") is registry.get("provider:smtp")  # scope helpers build names


# A key function picks the breaker from the call's arguments: one breaker per tenant.
@registry.protect(lambda tenant, body: f"tenant:{tenant}")
def import_contacts(tenant: str, body: str) -> str:
    if body == "malformed":
        raise ConnectionError("the importer crashed")
    return f"imported for {tenant}"


for _ in range(5):
    with contextlib.suppress(ConnectionError):
        import_contacts("acct_noisy", "malformed")
try:
    import_contacts("acct_noisy", "fine")
except BreakerOpen as refused:
    print("refused:", refused.key)
print(import_contacts("acct_quiet", "fine"))  # other tenants are unaffected

# The bound: a small registry keeps only its most recently used breakers.
small = BreakerRegistry(Breaker(), max_breakers=3)
for n in range(10):
    small.tenant(f"t{n}")
print("kept:", sorted(b.name for b in small.breakers()))
