"""Quick start: an httpx client that retries, a decorator for any function, and a poller."""

import httpx

from sendguard.backoff import RetryPolicy, RetryTransport, poll, retry

# A stand-in for a mail provider's API: busy twice (503, "come back in 0.2 s"), then fine.
answers = iter([503, 503, 202])


def mail_api(request: httpx.Request) -> httpx.Response:
    status = next(answers, 202)
    return httpx.Response(status, headers={"Retry-After": "0.2"} if status == 503 else {})


# 1. HTTP: wrap any transport (here a mock; by default httpx's own) and keep httpx.Client.
transport = RetryTransport(httpx.MockTransport(mail_api), RetryPolicy(attempts=4, deadline=10))
with httpx.Client(transport=transport, base_url="https://api.mail.example") as client:
    response = client.get("/v1/emails/em_123")
print("GET /v1/emails/em_123 ->", response.status_code, "after", transport.stats.retries, "retries")

# 2. Any function, sync or async: retry the errors that mean "try again later".
failures = [ConnectionError("connection reset"), ConnectionError("connection reset")]


@retry(RetryPolicy(attempts=3, base=0.05, cap=0.2), on=ConnectionError)
def deliver_webhook(url: str) -> str:
    if failures:
        raise failures.pop()
    return f"delivered to {url}"


print(deliver_webhook("https://hooks.example.com/sent"))

# 3. Polling: back off while the export is not ready, stop at a deadline.
checks = iter(["queued", "running", "done"])
state = poll(lambda: next(checks), until=lambda s: s == "done", every=0.05, deadline=5)
print("export:", state)
