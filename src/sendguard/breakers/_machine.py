"""The pure decision core of one breaker in one process: no I/O, time passed in.

`BreakerMachine` holds this process's window of outcomes and its cached copy of the
shared state (a `SharedView` adopted with local deadlines). It answers two questions:
may this call run (`admit`), and does this outcome trip the breaker (`record`). The
driver (`CircuitBreaker`) holds a lock around it, does the store round trips the
answers call for, and feeds the resulting views back through `adopt`.
"""

from __future__ import annotations

import enum

from sendguard.breakers._policy import Breaker, Mode, Outcome, State
from sendguard.breakers._store import SharedView
from sendguard.breakers._window import FAILED, SLOW, make_window

__all__ = ["Admit", "BreakerMachine", "trip_reason"]


class Admit(enum.IntEnum):
    """What `BreakerMachine.admit` decided."""

    RUN = 0
    """Run and record the outcome in the window."""
    PROBE = 1
    """Ask the store for a half-open probe permit first."""
    REJECT = 2
    """Refuse now (open, forced open, or half-open with no permit left)."""
    RUN_UNRECORDED = 3
    """Run and record nothing (disabled, forced closed, metrics-only while not closed)."""


def trip_reason(
    policy: Breaker, calls: int, failures: int, slow: int, consecutive: int
) -> str | None:
    """The condition that trips `policy` for these counts, or None."""
    if policy.consecutive_failures is not None and consecutive >= policy.consecutive_failures:
        return "consecutive_failures"
    if calls >= policy.min_calls:
        if policy.failure_rate is not None and failures >= policy.failure_rate * calls:
            return "failure_rate"
        if policy.slow_call_duration is not None and slow >= policy.effective_slow_rate() * calls:
            return "slow_call_rate"
    return None


class BreakerMachine:
    """State and window of one breaker as this process sees it."""

    __slots__ = (
        "closed_ticket",
        "consecutive",
        "denied_until",
        "fast",
        "generation",
        "open_until",
        "override",
        "override_reason",
        "override_until",
        "policy",
        "probes_left",
        "reason",
        "reopenings",
        "state",
        "window",
    )

    def __init__(self, policy: Breaker) -> None:
        self.policy = policy
        self.window = make_window(policy.window)
        self.consecutive = 0
        self.state = State.CLOSED
        self.generation = 0
        self.open_until = 0.0
        self.reopenings = 0
        self.probes_left = 0
        self.denied_until = 0.0
        self.override: State | None = None
        self.override_reason = ""
        self.override_until: float | None = None
        self.reason = ""
        self.fast = policy.mode is not Mode.DISABLED
        """True when a call may run and be recorded without asking anything else."""
        self.closed_ticket = 0
        """The ticket of a recorded call in the current closed generation (-1 when not closed)."""

    # --- state ---------------------------------------------------------------------------

    def _refresh_fast(self) -> None:
        self.fast = (
            self.state is State.CLOSED
            and self.override is None
            and self.policy.mode is not Mode.DISABLED
        )
        self.closed_ticket = self.generation << 2 if self.state is State.CLOSED else -1

    def effective_state(self, now: float) -> State:
        """The state as users see it: override, then mode, then the machine state."""
        self._expire_override(now)
        if self.override is not None:
            return self.override
        if self.policy.mode is Mode.DISABLED:
            return State.DISABLED
        if self.policy.mode is Mode.METRICS_ONLY:
            return State.METRICS_ONLY
        return self.state

    def _expire_override(self, now: float) -> None:
        if (
            self.override is not None
            and self.override_until is not None
            and now >= self.override_until
        ):
            self.override = None
            self.override_reason = ""
            self.override_until = None
            self._refresh_fast()

    def adopt(
        self, view: SharedView, now: float, *, force: bool = False
    ) -> tuple[State, State] | None:
        """Take the shared view as truth. Returns (old, new) machine state when it changed.

        A view older than what this process already saw is ignored unless `force` (used
        when the breaker switches between its shared store and its local fallback).
        """
        old = self.state
        if view.generation < self.generation and not force:
            return None
        if view.generation != self.generation and view.state is State.CLOSED:
            self.window.reset()
            self.consecutive = 0
        self.state = view.state
        self.generation = view.generation
        # Nothing left of the open time means "may probe now", whatever the clock reads next.
        self.open_until = now + view.open_remaining if view.open_remaining > 0 else 0.0
        self.reopenings = view.reopenings
        self.probes_left = view.probes_left
        self.reason = view.reason
        self.override = view.override
        self.override_reason = view.override_reason
        self.override_until = (
            None if view.override_remaining is None else now + view.override_remaining
        )
        self._refresh_fast()
        return (old, self.state) if old is not self.state else None

    # --- decisions -----------------------------------------------------------------------

    def admit(self, now: float) -> Admit:
        """May a call run now? (`fast` callers skip this while plainly closed.)"""
        self._expire_override(now)
        if self.override is State.FORCED_OPEN:
            return Admit.REJECT
        if self.override is State.FORCED_CLOSED or self.policy.mode is Mode.DISABLED:
            return Admit.RUN_UNRECORDED
        state = self.state
        if state is State.CLOSED:
            return Admit.RUN
        if state is State.OPEN and now < self.open_until:
            return self._refuse()
        if state is State.HALF_OPEN and now < self.denied_until:
            return self._refuse()
        return Admit.PROBE

    def _refuse(self) -> Admit:
        return Admit.RUN_UNRECORDED if self.policy.mode is Mode.METRICS_ONLY else Admit.REJECT

    def probe_denied(self, now: float) -> None:
        """The store had no permit: refuse locally for a short while before asking again."""
        self.denied_until = now + min(1.0, self.policy.half_open_max_wait / 10)

    def retry_after(self, now: float) -> float:
        """Seconds until a refused call could be admitted."""
        if self.override is State.FORCED_OPEN:
            if self.override_until is None:
                return self.policy.open_for
            return max(0.0, self.override_until - now)
        if self.state is State.OPEN:
            return max(0.0, self.open_until - now)
        return max(0.0, self.denied_until - now, min(1.0, self.policy.half_open_max_wait / 10))

    def record(self, generation: int, outcome: Outcome, slow: bool, now: float) -> str | None:
        """Record a call admitted with `Admit.RUN` at `generation`; return a trip reason.

        Results from an earlier generation (the breaker changed state while the call ran)
        are dropped: they describe a dependency state that no longer applies.
        """
        if outcome is Outcome.IGNORED or generation != self.generation:
            return None
        if self.state is not State.CLOSED:
            return None
        code = (FAILED if outcome is Outcome.FAILURE else 0) | (SLOW if slow else 0)
        self.window.record(code, now)
        if outcome is Outcome.FAILURE:
            self.consecutive += 1
        else:
            self.consecutive = 0
        if not code:
            return None
        calls, failures, slow_calls = self.window.counts(now)
        return trip_reason(self.policy, calls, failures, slow_calls, self.consecutive)

    def add_successes(self, n: int, now: float) -> None:
        """Fold in `n` fast successes counted since the last fold (closed state only)."""
        if self.state is State.CLOSED:
            self.window.record_successes(n, now)
            self.consecutive = 0

    def open_for(self, reopenings: int, draw: float) -> float:
        """How long to open for after `reopenings` reopenings in a row."""
        return self.policy.open_duration(reopenings, draw)

    def snapshot(self, now: float) -> SharedView:
        """This machine's state as a store view (the inverse of `adopt`): what a local
        fallback store is seeded with when the shared store goes away."""
        m = self
        return SharedView(
            state=m.state,
            generation=m.generation,
            open_remaining=max(0.0, m.open_until - now),
            reopenings=m.reopenings,
            override=m.override,
            override_reason=m.override_reason,
            override_remaining=None
            if m.override_until is None
            else max(0.0, m.override_until - now),
            reason=m.reason,
            probes_left=m.probes_left,
        )
