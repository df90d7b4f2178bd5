"""A hypothesis state machine drives a real breaker and a plain model side by side.

The model is the specification in a few lines: closed, open and half-open, consecutive
and rate trips over a count window, probes, backoff on reopening, half-open timeout,
ignored outcomes and operator overrides. Any sequence of calls, clock moves and operator
actions must leave the breaker and the model agreeing on every admission and state.
"""

from __future__ import annotations

from collections import deque

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry, State, Window
from sendguard.testing import FakeClock


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


class Model:
    def __init__(self, policy: Breaker, window: int) -> None:
        self.p = policy
        self.window: deque[bool] = deque(maxlen=window)
        self.consecutive = 0
        self.state = State.CLOSED
        self.open_until = 0.0
        self.reopenings = 0
        self.left = 0
        self.ok = 0
        self.since = 0.0
        self.override: State | None = None
        self.override_until: float | None = None

    def _open(self, now: float, reopenings: int) -> None:
        self.state = State.OPEN
        self.reopenings = reopenings
        self.open_until = now + self.p.open_duration(reopenings, 0.5)

    def effective(self, now: float) -> State:
        if (
            self.override is not None
            and self.override_until is not None
            and now >= self.override_until
        ):
            self.override = None
        return self.override or self.state

    def call(self, now: float, outcome: str) -> bool:
        """Return True if the call ran."""
        eff = self.effective(now)
        if eff is State.FORCED_OPEN:
            return False
        if eff is State.FORCED_CLOSED:
            return True
        if self.state is State.OPEN:
            if now < self.open_until:
                return False
            self.state, self.left, self.ok, self.since = (
                State.HALF_OPEN,
                self.p.half_open_calls,
                0,
                now,
            )
        if self.state is State.HALF_OPEN:
            if self.left == 0:
                if now - self.since > self.p.half_open_max_wait:
                    self._open(now, self.reopenings + 1)
                return False
            self.left -= 1
            self.since = now
            if outcome == "ignored":
                self.left += 1
            elif outcome == "failure":
                self._open(now, self.reopenings + 1)
            else:
                self.ok += 1
                if self.ok >= self.p.half_open_calls:
                    self.state, self.reopenings = State.CLOSED, 0
                    self.window.clear()
                    self.consecutive = 0
            return True
        if outcome == "ignored":
            return True
        failed = outcome == "failure"
        self.window.append(failed)
        self.consecutive = self.consecutive + 1 if failed else 0
        if failed:
            n, f = len(self.window), sum(self.window)
            trip = self.p.consecutive_failures is not None and (
                self.consecutive >= self.p.consecutive_failures
            )
            if n >= self.p.min_calls and self.p.failure_rate is not None:
                trip = trip or f >= self.p.failure_rate * n
            if trip:
                self._open(now, 0)
        return True


class BreakerVsModel(RuleBasedStateMachine):
    @initialize(
        consecutive=st.none() | st.integers(1, 5),
        rate=st.sampled_from([None, 0.5, 1.0]),
        min_calls=st.integers(1, 6),
        window=st.integers(1, 10),
        probes=st.integers(1, 3),
        backoff=st.sampled_from([1.0, 2.0]),
    )
    def setup(self, consecutive, rate, min_calls, window, probes, backoff):
        if consecutive is None and rate is None:
            rate = 0.5
        min_calls = min(min_calls, window)  # a larger one is a config error
        self.policy = Breaker(
            failure_rate=rate,
            consecutive_failures=consecutive,
            window=Window.count(window),
            min_calls=min_calls,
            open_for=10.0,
            open_backoff=backoff,
            max_open_for=40.0,
            open_jitter=0.0,
            half_open_calls=probes,
            half_open_max_wait=25.0,
            ignore_on=(Ignored,),
        )
        self.clock = FakeClock()
        self.registry = BreakerRegistry(self.policy, clock=self.clock, sync_interval=1.0)
        self.breaker = self.registry.get("model")
        self.model = Model(self.policy, window)

    def _call(self, outcome: str) -> None:
        def body() -> str:
            if outcome == "failure":
                raise Boom
            if outcome == "ignored":
                raise Ignored
            return "ok"

        expected = self.model.call(self.clock.monotonic(), outcome)
        try:
            self.breaker.call(body)
            ran = True
        except (Boom, Ignored):
            ran = True
        except BreakerOpen as rejected:
            ran = False
            retry_after = rejected.retry_after
            assert retry_after >= 0
        assert ran == expected, (outcome, self.model.state, self.breaker.state)

    @rule()
    def success(self):
        self._call("success")

    @rule()
    def failure(self):
        self._call("failure")

    @rule()
    def ignored(self):
        self._call("ignored")

    @rule(seconds=st.floats(0, 30, allow_nan=False))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule(for_=st.none() | st.floats(1, 50))
    def force_open(self, for_):
        self.registry.force_open("model", "drill", for_=for_)
        self.model.override = State.FORCED_OPEN
        self.model.override_until = None if for_ is None else self.clock.monotonic() + for_

    @rule(for_=st.none() | st.floats(1, 50))
    def force_closed(self, for_):
        self.registry.force_closed("model", "drill", for_=for_)
        self.model.override = State.FORCED_CLOSED
        self.model.override_until = None if for_ is None else self.clock.monotonic() + for_

    @rule()
    def clear_override(self):
        self.registry.clear_override("model")
        self.model.override = None

    @invariant()
    def same_state(self):
        if hasattr(self, "model"):
            assert self.breaker.state == self.model.effective(self.clock.monotonic())


TestBreakerVsModel = BreakerVsModel.TestCase
TestBreakerVsModel.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
