"""Testing code that retries or polls: testing mode makes every wait zero and caps attempts.

These are ordinary test functions (pytest collects them as they are); run as a script,
the file calls them itself.
"""

import time

import pytest

from sendguard.backoff import TESTING_ATTEMPTS, PollTimeout, RetryPolicy, poll, retry
from sendguard.testing import set_testing

calls: list[int] = []


@retry(RetryPolicy(attempts=10, base=5, cap=60), on=ConnectionError)
def sync_contacts() -> None:
    calls.append(1)
    raise ConnectionError("the CRM is down")


def test_retries_run_at_once_and_stop_early() -> None:
    calls.clear()
    started = time.monotonic()
    with set_testing(), pytest.raises(ConnectionError):
        sync_contacts()
    assert len(calls) == TESTING_ATTEMPTS  # not 10
    assert time.monotonic() - started < 1  # no 5-60 s waits


def test_polls_run_at_once_and_time_out() -> None:
    with set_testing(), pytest.raises(PollTimeout) as timeout:
        poll(lambda: False, every=30, deadline=3600)
    assert timeout.value.polls == TESTING_ATTEMPTS


if __name__ == "__main__":
    for test in (test_retries_run_at_once_and_stop_early, test_polls_run_at_once_and_time_out):
        test()
        print(f"{test.__name__}: passed")
