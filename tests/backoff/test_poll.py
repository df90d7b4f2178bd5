"""The poller: backs off on "not ready" and on failure, honours Retry-After, stops at a deadline."""

from __future__ import annotations

import asyncio
import itertools
import random

import httpx
import pytest

from sendguard import ConfigError
from sendguard.backoff import TESTING_ATTEMPTS, Jitter, PollTimeout, RetryScheduled, apoll, poll
from sendguard.drills import simulate
from sendguard.testing import FakeClock, set_testing


class Job:
    """A job that is ready after `ready_after` checks; each check is logged with its time."""

    def __init__(self, clock: FakeClock, ready_after: int, fail_on: tuple[int, ...] = ()) -> None:
        self.clock = clock
        self.ready_after = ready_after
        self.fail_on = fail_on
        self.checks: list[float] = []

    def __call__(self) -> dict[str, str]:
        self.checks.append(self.clock.monotonic())
        if len(self.checks) in self.fail_on:
            raise ConnectionError("the API is down")
        done = len(self.checks) >= self.ready_after
        return {"state": "done" if done else "running"}


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


def test_polls_until_ready_backing_off_from_every_to_max_interval():
    clock = FakeClock()
    job = Job(clock, ready_after=8)
    result = poll(
        job, until=lambda r: r["state"] == "done", every=1, max_interval=8, deadline=600,
        clock=clock, rng=random.Random(4),
    )  # fmt: skip
    assert result == {"state": "done"}
    waits = gaps(job.checks)
    ceilings = [1, 2, 4, 8, 8, 8, 8]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))  # equal jitter


def test_failures_are_waited_out_and_other_errors_raised():
    clock = FakeClock()
    job = Job(clock, ready_after=4, fail_on=(2, 3))
    events: list[object] = []
    poll(job, until=lambda r: r["state"] == "done", deadline=60, clock=clock, hooks=[events.append])
    reasons = [e.reason for e in events if isinstance(e, RetryScheduled)]
    assert reasons == ["not_ready", "connection_error", "connection_error"]

    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        poll(broken, deadline=60, clock=clock)


def test_a_deadline_ends_polling_with_poll_timeout():
    clock = FakeClock()
    job = Job(clock, ready_after=10**6)
    start = clock.monotonic()
    with pytest.raises(PollTimeout) as timeout:
        poll(job, until=lambda r: r["state"] == "done", every=2, max_interval=10, deadline=60,
             clock=clock)  # fmt: skip
    assert job.checks[-1] - start < 60
    assert timeout.value.polls == len(job.checks)
    assert timeout.value.last == {"state": "running"}
    assert isinstance(timeout.value, TimeoutError)
    assert "not ready after" in str(timeout.value)


def test_poll_timeout_chains_the_last_error():
    clock = FakeClock()

    def down() -> None:
        raise ConnectionError("still down")

    with pytest.raises(PollTimeout) as timeout:
        poll(down, deadline=30, clock=clock)
    assert isinstance(timeout.value.__cause__, ConnectionError)
    assert timeout.value.last is None


def test_retry_after_on_an_accepted_job_sets_the_next_poll():
    clock = FakeClock()
    answers = iter(
        [
            httpx.Response(202, headers={"Retry-After": "20"}),
            httpx.Response(503, headers={"Retry-After": "15"}),
            httpx.Response(200, json={"state": "done"}),
        ]
    )
    times: list[float] = []

    def check() -> httpx.Response:
        times.append(clock.monotonic())
        return next(answers)

    result = poll(check, until=lambda r: r.status_code == 200, every=1, deadline=120, clock=clock)
    assert result.json() == {"state": "done"}
    waits = gaps(times)
    assert 20 <= waits[0] <= 22
    assert 15 <= waits[1] <= 16.5


def test_testing_mode_polls_at_once_and_caps_the_polls():
    clock = FakeClock()
    job = Job(clock, ready_after=3)
    with set_testing():
        poll(job, until=lambda r: r["state"] == "done", every=30, deadline=3600, clock=clock)
        assert set(job.checks) == {job.checks[0]}
        never = Job(clock, ready_after=10**6)
        with pytest.raises(PollTimeout):
            poll(never, until=lambda r: r["state"] == "done", deadline=3600, clock=clock)
    assert len(never.checks) == TESTING_ATTEMPTS


def test_apoll_cuts_the_last_poll_off_at_the_deadline():
    clock = FakeClock()
    polls: list[float] = []

    async def hangs() -> bool:
        polls.append(clock.monotonic())
        await asyncio.sleep(1000)  # a hung dependency, on simulated time
        return True

    async def main() -> float:
        start = clock.monotonic()
        with pytest.raises(PollTimeout):
            await apoll(hangs, deadline=45, clock=clock)
        return clock.monotonic() - start

    assert simulate(clock, main) == pytest.approx(45)
    assert len(polls) == 1


def test_apoll_returns_the_ready_result():
    clock = FakeClock()
    job = Job(clock, ready_after=3)

    async def check() -> dict[str, str]:
        return job()

    result = asyncio.run(
        apoll(check, until=lambda r: r["state"] == "done", every=0.5, deadline=10, clock=clock)
    )
    assert result == {"state": "done"}
    assert len(job.checks) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "poll.every must be a finite number > 0, got 0"),
        ({"every": 10, "max_interval": 5}, "poll.every=10 is above max_interval=5"),
        ({"deadline": -1}, "poll deadline must be a positive number of seconds, got -1"),
        ({"deadline": float("inf")}, "poll deadline"),
        ({"until": "done"}, "poll until= must be a predicate, got 'done'"),
        ({"jitter": "equal"}, "poll.jitter must be a Jitter"),
    ],
)
def test_bad_poll_arguments(kwargs, message):
    kwargs.setdefault("deadline", 10)
    with pytest.raises(ConfigError, match=message):
        poll(lambda: True, **kwargs)


def test_jitter_none_polls_on_a_fixed_doubling_schedule():
    clock = FakeClock()
    job = Job(clock, ready_after=4)
    poll(job, until=lambda r: r["state"] == "done", every=3, max_interval=12, deadline=100,
         jitter=Jitter.NONE, clock=clock)  # fmt: skip
    assert gaps(job.checks) == [3, 6, 12]
