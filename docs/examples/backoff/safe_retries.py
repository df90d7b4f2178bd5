"""Safe retries: idempotent methods retry; POST and PATCH only with an Idempotency-Key."""

import httpx

from sendguard.backoff import RetryPolicy, RetryTransport
from sendguard.testing import FakeClock

seen: list[str] = []


def flaky_api(request: httpx.Request) -> httpx.Response:
    """Every first request to a path gets a 503; the next one gets through."""
    key = request.headers.get("Idempotency-Key")
    shown = "none" if key is None else "a random UUID" if len(key) == 36 else repr(key)
    seen.append(f"{request.method} {request.url.path} key: {shown}")
    first = sum(line.startswith(f"{request.method} {request.url.path} ") for line in seen) == 1
    return httpx.Response(503 if first else 200)


def client(idempotency_keys: bool = False) -> httpx.Client:
    transport = RetryTransport(
        httpx.MockTransport(flaky_api),
        RetryPolicy(),
        idempotency_keys=idempotency_keys,
        clock=FakeClock(),
    )
    return httpx.Client(transport=transport, base_url="https://api.mail.example")


with client() as http:
    print("PUT  ->", http.put("/v1/templates/welcome", json={"body": "hi"}).status_code)
    print("POST ->", http.post("/v1/emails", json={"to": "a@example.com"}).status_code)
    keyed = http.post("/v1/batches", json={}, headers={"Idempotency-Key": "batch-42"})
    print("POST with a key ->", keyed.status_code)

with client(idempotency_keys=True) as http:  # the transport adds a key where none is set
    print("PATCH, key added ->", http.patch("/v1/domains/d_1", json={}).status_code)

print("what the API received:")
for line in seen:
    print(" ", line)
