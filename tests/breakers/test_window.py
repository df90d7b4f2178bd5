"""Windows agree with a naive model of "the last N calls" and "the last T seconds"."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sendguard.breakers._window import FAILED, SLOW, CountWindow, TimeWindow

codes = st.sampled_from([0, FAILED, SLOW, FAILED | SLOW])


def _tally(items: list[int]) -> tuple[int, int, int]:
    return len(items), sum(1 for c in items if c & FAILED), sum(1 for c in items if c & SLOW)


@given(size=st.integers(1, 12), ops=st.lists(st.tuples(codes, st.integers(0, 5)), max_size=80))
def test_count_window_matches_the_last_n_calls(size, ops):
    window = CountWindow(size)
    seen: list[int] = []
    for code, batch in ops:
        if code == 0 and batch:
            window.record_successes(batch, 0.0)
            seen.extend([0] * batch)
        else:
            window.record(code, 0.0)
            seen.append(code)
        assert window.counts(0.0) == _tally(seen[-size:])


@given(
    seconds=st.sampled_from([1.0, 10.0, 30.0]),
    ops=st.lists(st.tuples(codes, st.floats(0, 4, allow_nan=False)), max_size=60),
)
def test_time_window_holds_exactly_the_recent_buckets(seconds, ops):
    window = TimeWindow(seconds)
    width = seconds / TimeWindow.BUCKETS
    now = 100.0
    seen: list[tuple[int, int]] = []  # (bucket index, code)
    for code, step in ops:
        now += step * width
        idx = int(now // width)
        window.record(code, now)
        seen.append((idx, code))
        live = [c for b, c in seen if b > idx - TimeWindow.BUCKETS]
        assert window.counts(now) == _tally(live)


def test_time_window_forgets_everything_after_a_quiet_spell():
    window = TimeWindow(10.0)
    for _ in range(5):
        window.record(FAILED, 50.0)
    assert window.counts(50.0) == (5, 5, 0)
    assert window.counts(59.9) == (5, 5, 0)
    assert window.counts(61.0) == (0, 0, 0)
    window.record_successes(3, 61.0)
    assert window.counts(61.0) == (3, 0, 0)


def test_count_window_batch_larger_than_the_window_clears_failures():
    window = CountWindow(4)
    for _ in range(4):
        window.record(FAILED | SLOW, 0.0)
    window.record_successes(10, 0.0)
    assert window.counts(0.0) == (4, 0, 0)
