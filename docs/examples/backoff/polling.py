"""Polling the way the analytics modal should have: back off, honour Retry-After, stop."""

import asyncio

import httpx

from sendguard.backoff import PollTimeout, apoll, poll
from sendguard.testing import FakeClock

clock = FakeClock()  # the example runs at once; in an app, leave the clock out
start = clock.monotonic()

# 1. A report job: 202 with Retry-After while it runs, a 503 on the way, then 200.
answers = iter(
    [
        httpx.Response(202, headers={"Retry-After": "5"}),
        httpx.Response(503),
        httpx.Response(202),
        httpx.Response(200, json={"opens": 3, "clicks": 1}),
    ]
)


def check_report() -> httpx.Response:
    response = next(answers)
    print(f"t={clock.monotonic() - start:5.1f}s  status {response.status_code}")
    return response


report = poll(
    check_report, until=lambda r: r.status_code == 200, every=2, max_interval=30,
    deadline=300, clock=clock,
)  # fmt: skip
print("report:", report.json())

# 2. A job that never finishes: PollTimeout at the deadline, with what was seen last.
try:
    poll(lambda: {"state": "running"}, until=lambda s: s["state"] == "done", every=2,
         max_interval=30, deadline=120, clock=clock)  # fmt: skip
except PollTimeout as timeout:
    print(f"gave up: {timeout.polls} polls in {timeout.elapsed:.0f} s, last {timeout.last}")


# 3. The same for coroutines.
async def fetch_status() -> str:
    return "done"


print("async:", asyncio.run(apoll(fetch_status, until=lambda s: s == "done", deadline=10)))
