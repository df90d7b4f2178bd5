"""Breaker-aware retries: while a host's breaker is open, requests fail fast, unsent."""

import httpx

from sendguard.backoff import RetryPolicy, RetryTransport
from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry
from sendguard.testing import FakeClock

clock = FakeClock()
sent: list[str] = []


def provider(request: httpx.Request) -> httpx.Response:
    sent.append(str(request.url))
    return httpx.Response(502)  # the provider's gateway is failing


breakers = BreakerRegistry(Breaker.consecutive(3, open_for=30), clock=clock)
transport = RetryTransport(
    httpx.MockTransport(provider), RetryPolicy(attempts=5), breakers=breakers, clock=clock
)
with httpx.Client(transport=transport, base_url="https://api.mail.example") as client:
    for attempt in range(3):
        try:
            client.get("/v1/emails")
        except BreakerOpen as refused:
            print(f"call {attempt}: refused ({refused.key} is {refused.reason}), "
                  f"retry in about {refused.retry_after:.0f} s")  # fmt: skip
print("requests that reached the provider:", len(sent))
print("breaker:", breakers.provider("api.mail.example").state.value)
