"""`CircuitBreaker`: the driver that runs calls through a `BreakerMachine` and a store.

The success path of a closed breaker takes the lock once for a few counter updates and
never touches the store. Store round trips happen only on a failure that trips, on a
half-open probe, and on a periodic refresh of the shared view (every `sync_interval`
seconds, by whichever call comes first). No lock is held while the guarded call or a
store command runs. If the shared store fails, the breaker switches to a local store
seeded with the last view it had, and the store is retried after a backoff.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sendguard._core.clock import SYSTEM_CLOCK, Clock, SystemClock
from sendguard._core.config import make_rng
from sendguard._core.durations import format_duration
from sendguard._core.errors import BreakerOpen
from sendguard._core.store import StoreGate
from sendguard._core.telemetry import Telemetry
from sendguard.breakers._events import BreakerRejected, BreakerTransition
from sendguard.breakers._forms import CallForms
from sendguard.breakers._link import StoreLink, view_of
from sendguard.breakers._machine import Admit, BreakerMachine
from sendguard.breakers._operator import OperatorControls
from sendguard.breakers._policy import Breaker, Mode, Outcome, State
from sendguard.breakers._store import (
    AsyncBreakerStore,
    BreakerStore,
    MemoryBreakerStore,
    SharedView,
)

__all__ = ["CircuitBreaker", "Stats"]

T = TypeVar("T")

RUN, PROBE, UNRECORDED = 0, 1, 2
"""Ticket kinds, in the low two bits of a ticket; the generation is in the rest."""

SUCCESS, FAILURE, IGNORED, SLOW_CALLS, REJECTED = range(5)


class Stats:
    """Cumulative counts of one breaker in this process."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = [0, 0, 0, 0, 0]

    def as_dict(self) -> dict[str, int]:
        """{'success', 'failure', 'ignored', 'slow', 'rejected'} -> count."""
        names = ("success", "failure", "ignored", "slow", "rejected")
        return dict(zip(names, self.counts, strict=True))


class CircuitBreaker(CallForms, OperatorControls):
    """One named circuit breaker. Usually obtained from a `BreakerRegistry`.

    Use it as a decorator (``@cb`` on ``def`` or ``async def``), a context manager
    (``with cb.guard() as call:`` / ``async with cb.guard() as call:``) or directly
    (``cb.call(fn, *args)``, ``await cb.acall(fn, *args)``). A refused call raises
    `BreakerOpen` with `retry_after`, unless a `fallback` was given to `protect`.
    """

    def __init__(
        self,
        name: str,
        policy: Breaker,
        store: BreakerStore | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: Telemetry | None = None,
        gate: StoreGate | None = None,
        local: MemoryBreakerStore | None = None,
        sync_interval: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self.clock = clock
        self.telemetry = telemetry or Telemetry()
        self._stats = Stats()
        self.sync_interval = sync_interval
        self._now = time.monotonic if isinstance(clock, SystemClock) else clock.monotonic
        self._counts = self._stats.counts
        # Fast successes only tick this atomic counter (no lock); `_fold` moves them into
        # the window under the lock before any decision that reads the window.
        self._successes = itertools.count()
        self._tick = self._successes.__next__
        self._folded = 0
        self._rng = make_rng(rng)
        self._lock = threading.Lock()
        self._machine = BreakerMachine(policy)
        local = local or MemoryBreakerStore(clock, label="local")
        # A dry run (metrics-only) or a disabled breaker keeps its state to this process:
        # publishing its trips would make enforcing processes refuse calls.
        shared = store if policy.mode is Mode.ENFORCE else None
        chosen: BreakerStore = shared or local
        self._link = StoreLink(
            name,
            chosen,
            local,
            gate or StoreGate(chosen.label, "breaker", self.telemetry, clock=clock),
            snapshot=self._snapshot_now,
            pending_trip=self._pending_trip,
        )
        self._next_sync = 0.0
        self._plain = policy.classify_result is None
        self._slow = policy.slow_call_duration
        self._fast_until = 0.0
        """Calls before this time may skip admission (closed, fast, no refresh due)."""

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"

    # --- introspection -----------------------------------------------------------------

    @property
    def state(self) -> State:
        """The state as this process currently sees it."""
        with self._lock:
            return self._machine.effective_state(self._now())

    @property
    def machine_state(self) -> State:
        """CLOSED, OPEN or HALF_OPEN, whatever the mode or an override says.

        For a metrics-only breaker this is what it would be doing if it were enforced.
        """
        with self._lock:
            return self._machine.state

    @property
    def stats(self) -> Stats:
        """Cumulative call counts in this process (fast successes folded in first)."""
        with self._lock:
            self._fold(self._now())
        return self._stats

    def _fold(self, now: float) -> None:
        """Move fast successes into the window. The caller holds the lock.

        A fast success ran before the refresh deadline in force at the time, so it is
        placed no later than that deadline: after an idle spell, old successes land where
        they happened (within one `sync_interval`), not at the moment of folding.
        """
        ticks = self._tick()
        pending = ticks - self._folded
        self._folded = ticks + 1
        if pending:
            self._counts[SUCCESS] += pending
            at = min(now, self._next_sync) if self._next_sync > 0 else now
            self._machine.add_successes(pending, at)

    @property
    def shared(self) -> bool:
        """True while the breaker is using its shared store (not the local fallback)."""
        return self._link.shared

    def refresh(self) -> SharedView:
        """Read the shared state now (one store round trip) and adopt it.

        Calls do this on their own every `sync_interval`; call it to see a change made
        elsewhere (an operator's override) at once.
        """
        return self._via(lambda s: s.read(self.name))

    # --- store access (see `_link`) ----------------------------------------------------

    def _via(self, op: Callable[[BreakerStore], T]) -> T:
        result, switched = self._link.via(op)
        self._adopt_result(result, switched)
        return result

    async def _avia(self, op: Callable[[AsyncBreakerStore], Awaitable[T]]) -> T:
        result, switched = await self._link.avia(op)
        self._adopt_result(result, switched)
        return result

    def _pending_trip(self, view: SharedView) -> tuple[int, float, int] | None:
        m = self._machine
        remaining = m.open_until - self._now()
        if view.state is State.CLOSED and m.state is State.OPEN and remaining > 0:
            return view.generation, remaining, m.reopenings
        return None

    def _snapshot_now(self) -> SharedView:
        with self._lock:
            return self._machine.snapshot(self._now())

    def _adopt_result(self, result: object, force: bool) -> None:
        view = view_of(result)
        now = self._now()
        with self._lock:
            self._fold(now)
            change = self._machine.adopt(view, now, force=force)
            self._fast_until = self._next_sync if self._machine.fast else 0.0
        if change is not None:
            self._emit_transition(change[0], change[1], view.reason)

    def _emit_transition(self, old: State, new: State, reason: str) -> None:
        self.telemetry.emit(
            BreakerTransition(
                breaker=self.name, from_state=old.value, to_state=new.value, reason=reason
            )
        )

    # --- admission ---------------------------------------------------------------------

    def _reject(self, now: float) -> BreakerOpen:
        with self._lock:
            self._counts[REJECTED] += 1
            retry_after = self._machine.retry_after(now)
            state = self._machine.effective_state(now)
        self.telemetry.emit(
            BreakerRejected(breaker=self.name, state=state.value, retry_after=retry_after)
        )
        why = f" ({self._machine.override_reason})" if self._machine.override_reason else ""
        return BreakerOpen(
            f"circuit breaker {self.name!r} is {state.value}{why}; "
            f"retry in {format_duration(retry_after)}",
            retry_after=retry_after,
            key=self.name,
            policy=self.policy,
            reason=state.value,
        )

    def _decide(self, now: float) -> Admit:
        with self._lock:
            return self._machine.admit(now)

    def _sync_due(self, now: float) -> bool:
        if now < self._next_sync:
            return False
        with self._lock:
            self._fold(now)  # before the deadline moves: pending successes predate it
            self._next_sync = now + self.sync_interval
            self._fast_until = 0.0
        return True

    def _probe_args(self) -> tuple[str, int, float, float]:
        m = self._machine
        reopen = m.open_for(m.reopenings + 1, self._rng.random())
        return self.name, self.policy.half_open_calls, self.policy.half_open_max_wait, reopen

    def _after_probe(self, granted: bool, now: float) -> int:
        if granted:
            return self._machine.generation << 2 | PROBE
        with self._lock:
            self._machine.probe_denied(now)
        if self._machine.fast:
            return self._machine.generation << 2 | RUN
        if self.policy.mode is Mode.METRICS_ONLY:
            return UNRECORDED
        raise self._reject(now)

    def admit_fast(self, now: float) -> int | None:
        """The ticket of a plainly closed breaker with no refresh due, else None (then
        call `admit` or `aadmit`)."""
        return self._machine.closed_ticket if now < self._fast_until else None

    def finish_fast(self, ticket: int, outcome: Outcome, elapsed: float) -> bool:
        """Record a plain success of a recorded closed-state call without the lock; False
        (nothing recorded) if `finish` must do it."""
        if ticket & 3 or outcome is not Outcome.SUCCESS:
            return False
        if self._slow is not None and elapsed >= self._slow:
            return False
        self._tick()
        return True

    def admit(self, now: float) -> int:
        """Decide a call's fate: a ticket to pass to `finish`, or raise `BreakerOpen`."""
        if now < self._fast_until:
            return self._machine.closed_ticket
        if self._sync_due(now):
            self._via(lambda s: s.read(self.name))
            now = self._now()
        decision = self._decide(now)
        if decision is Admit.RUN:
            self._fast_until = self._next_sync if self._machine.fast else 0.0
            return self._machine.generation << 2 | RUN
        if decision is Admit.RUN_UNRECORDED:
            return UNRECORDED
        if decision is Admit.REJECT:
            raise self._reject(now)
        granted, _ = self._via(lambda s: s.acquire_probe(*self._probe_args()))
        return self._after_probe(granted, now)

    async def aadmit(self, now: float) -> int:
        """`admit` for coroutines: store round trips are awaited, never blocking the loop."""
        if now < self._fast_until:
            return self._machine.closed_ticket
        if self._sync_due(now):
            await self._avia(lambda s: s.aread(self.name))
            now = self._now()
        decision = self._decide(now)
        if decision is Admit.RUN:
            self._fast_until = self._next_sync if self._machine.fast else 0.0
            return self._machine.generation << 2 | RUN
        if decision is Admit.RUN_UNRECORDED:
            return UNRECORDED
        if decision is Admit.REJECT:
            raise self._reject(now)
        granted, _ = await self._avia(lambda s: s.aacquire_probe(*self._probe_args()))
        return self._after_probe(granted, now)

    # --- outcomes --------------------------------------------------------------------

    def _count(self, outcome: Outcome, slow: bool) -> None:
        counts = self._counts
        counts[
            SUCCESS
            if outcome is Outcome.SUCCESS
            else FAILURE
            if outcome is Outcome.FAILURE
            else IGNORED
        ] += 1
        if slow:
            counts[SLOW_CALLS] += 1

    def _settle(
        self, ticket: int, outcome: Outcome, elapsed: float, now: float
    ) -> tuple[str, Any] | None:
        """Record locally; return the store operation the outcome calls for, if any."""
        slow = (
            self.policy.slow_call_duration is not None and elapsed >= self.policy.slow_call_duration
        )
        kind, generation = ticket & 3, ticket >> 2
        with self._lock:
            self._fold(now)
            self._count(outcome, slow)
            if kind == UNRECORDED:
                return None
            m = self._machine
            if kind == PROBE:
                if outcome is Outcome.IGNORED:
                    return ("release", (self.name, generation))
                ok = outcome is Outcome.SUCCESS and not slow
                reopen = m.open_for(m.reopenings + 1, self._rng.random())
                return ("report", (self.name, generation, ok, self.policy.half_open_calls, reopen))
            reason = m.record(generation, outcome, slow, now)
            if reason is None:
                return None
            return ("trip", (self.name, generation, m.open_for(0, self._rng.random()), 0, reason))

    def finish(self, ticket: int, outcome: Outcome, elapsed: float) -> None:
        """Record the outcome of a call admitted with `ticket` that took `elapsed` seconds."""
        if self.finish_fast(ticket, outcome, elapsed):
            return
        op = self._settle(ticket, outcome, elapsed, self._now())
        if op is not None:
            name, args = op
            if name == "trip":
                self._via(lambda s: s.trip(*args))
            elif name == "report":
                self._via(lambda s: s.report_probe(*args))
            else:
                self._via(lambda s: s.release_probe(*args))

    async def afinish(self, ticket: int, outcome: Outcome, elapsed: float) -> None:
        """`finish` for coroutines."""
        if self.finish_fast(ticket, outcome, elapsed):
            return
        op = self._settle(ticket, outcome, elapsed, self._now())
        if op is not None:
            name, args = op
            if name == "trip":
                await self._avia(lambda s: s.atrip(*args))
            elif name == "report":
                await self._avia(lambda s: s.areport_probe(*args))
            else:
                await self._avia(lambda s: s.arelease_probe(*args))

    def outcome_of(self, result: object) -> Outcome:
        """Classify a returned value with the policy's `classify_result` (else success)."""
        classify = self.policy.classify_result
        return Outcome.SUCCESS if classify is None else classify(result)

    # --- running calls -----------------------------------------------------------------

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` through the breaker."""
        start = self._now()
        ticket = self._machine.closed_ticket if start < self._fast_until else self.admit(start)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.finish(ticket, self.policy.classify_exception(exc), self._now() - start)
            raise
        if self._plain and not ticket & 3:
            slow = self._slow
            if slow is None or self._now() - start < slow:
                self._tick()
                return result
        self.finish(ticket, self.outcome_of(result), self._now() - start)
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` through the breaker (failures of the coroutine count)."""
        start = self._now()
        if start < self._fast_until:
            ticket = self._machine.closed_ticket
        else:
            ticket = await self.aadmit(start)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self.afinish(ticket, self.policy.classify_exception(exc), self._now() - start)
            raise
        if self._plain and not ticket & 3:
            slow = self._slow
            if slow is None or self._now() - start < slow:
                self._tick()
                return result
        await self.afinish(ticket, self.outcome_of(result), self._now() - start)
        return result
