"""The registry's scheduling core: due times, one run in flight per probe, deadlines."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sendguard.health._schedule import Schedule


def test_everything_is_due_at_once_then_every_interval() -> None:
    schedule = Schedule()
    schedule.add("a", interval=1.0, timeout=0.5)
    schedule.add("b", interval=3.0, timeout=0.5)
    assert schedule.due(0.0).start == ("a", "b")
    assert schedule.finished("a") and schedule.finished("b")
    assert schedule.due(0.5).start == ()
    assert schedule.due(1.0).start == ("a",)
    assert schedule.next_wakeup() == 1.5  # a's deadline comes before b's next due time


def test_a_running_check_is_not_started_again_but_reported_hung() -> None:
    schedule = Schedule()
    schedule.add("slow", interval=1.0, timeout=0.5)
    assert schedule.due(0.0).start == ("slow",)
    assert schedule.expired(0.4) == ()
    assert schedule.expired(0.5) == ("slow",)
    assert schedule.expired(0.6) == ()  # given up on once
    due = schedule.due(1.0)
    assert due.start == ()
    assert due.hung == (("slow", 1.0),)
    assert not schedule.finished("slow")  # the late answer does not count
    assert schedule.due(2.0).start == ("slow",)


def test_force_starts_only_idle_probes() -> None:
    schedule = Schedule()
    schedule.add("a", interval=10.0, timeout=1.0)
    schedule.add("b", interval=10.0, timeout=1.0)
    schedule.due(0.0)
    schedule.finished("a")
    assert schedule.force(2.0) == ("a",)
    assert schedule.deadline("a") == 3.0
    due = schedule.due(11.0)
    assert due.start == ()  # a is next due at 12; b was due at 10 but still runs
    assert due.hung == (("b", 11.0),)
    schedule.finished("a")
    assert schedule.due(12.0).start == ("a",)


def test_late_loop_does_not_burst() -> None:
    schedule = Schedule()
    schedule.add("a", interval=1.0, timeout=0.1)
    schedule.due(0.0)
    schedule.finished("a")
    assert schedule.due(10.5).start == ("a",)  # one run, not ten
    schedule.finished("a")
    assert schedule.due(10.9).start == ()
    assert schedule.due(11.5).start == ("a",)


@given(st.lists(st.floats(0.01, 5.0), min_size=1, max_size=40))
def test_never_more_than_one_run_in_flight(steps) -> None:
    schedule = Schedule()
    schedule.add("p", interval=1.0, timeout=0.7)
    now, running = 0.0, False
    for step in steps:
        due = schedule.due(now)
        if due.start:
            assert not running
            running = True
        schedule.expired(now)
        if running and step > 0.3:  # finishes sometimes
            schedule.finished("p")
            running = False
        assert schedule.next_wakeup() < math.inf
        now += step
