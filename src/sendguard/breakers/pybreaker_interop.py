"""Run an existing `pybreaker.CircuitBreaker` behind sendguard's decorators and adapters.

For teams that already configured pybreaker breakers (thresholds, Redis storage,
listeners): `BreakerRegistry.adopt(name, cb)` wraps one so that `registry.protect(name)`,
`guard()` and the web adapters use it, with two changes to how it runs:

- pybreaker's lock is held only around its bookkeeping, never while the guarded call
  runs, so calls through one breaker run concurrently (pybreaker's own `call` runs
  them one at a time);
- `async def` calls are supported, and a refusal raises sendguard's `BreakerOpen` with
  `retry_after` computed from pybreaker's `opened_at` and `reset_timeout`.

pybreaker's rules stay its own: consecutive failures only, and a half-open state that
admits every call. Its listeners and state storage are used as configured. This
module imports pybreaker, so it is loaded only by `adopt` (``sendguard[pybreaker]``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker

from sendguard._core.errors import BreakerOpen
from sendguard.breakers._policy import State

__all__ = ["PybreakerBreaker"]

T = TypeVar("T")
_STATES = {
    pybreaker.STATE_CLOSED: State.CLOSED,
    pybreaker.STATE_OPEN: State.OPEN,
    pybreaker.STATE_HALF_OPEN: State.HALF_OPEN,
}


class _Failed(Exception):
    """Stands for a failure known only by its outcome (a 5xx seen by the web adapters)."""


class PybreakerBreaker:
    """A `pybreaker.CircuitBreaker` with sendguard's calling conventions."""

    def __init__(self, name: str, breaker: pybreaker.CircuitBreaker) -> None:
        self.name = name
        self.breaker = breaker

    def __repr__(self) -> str:
        return f"PybreakerBreaker({self.name!r}, state={self.state.value})"

    @property
    def state(self) -> State:
        """pybreaker's state as a sendguard `State`."""
        return _STATES.get(self.breaker.current_state, State.CLOSED)

    def _retry_after(self) -> float:
        opened_at = self.breaker._state_storage.opened_at
        if opened_at is None:
            return float(self.breaker.reset_timeout)
        until = opened_at + timedelta(seconds=self.breaker.reset_timeout)
        return max(0.0, (until - datetime.now(UTC)).total_seconds())

    def _before(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        cb = self.breaker
        with cb._lock:
            if cb.current_state == pybreaker.STATE_OPEN:
                # pybreaker's open state would run the call itself once its timeout has
                # passed; decide here instead, so the call runs exactly once, unlocked.
                retry_after = self._retry_after()
                if retry_after > 0:
                    raise BreakerOpen(
                        f"circuit breaker {self.name!r} (pybreaker) is open",
                        retry_after=retry_after,
                        key=self.name,
                        policy=cb,
                        reason="open",
                    )
                cb.half_open()
            cb.state.before_call(fn, *args, **kwargs)
            for listener in cb.listeners:
                listener.before_call(cb, fn, *args, **kwargs)

    def _failed(self, error: BaseException) -> None:
        cb = self.breaker
        with cb._lock:
            try:
                cb.state._handle_error(error, reraise=False)
            except pybreaker.CircuitBreakerError:
                pass  # pybreaker signals its trip by raising; the caller re-raises `error`
            except BaseException as same:
                if same is not error:
                    raise

    def _succeeded(self) -> None:
        cb = self.breaker
        with cb._lock:
            cb.state._handle_success()

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` through the pybreaker breaker, without its lock held."""
        self._before(fn, args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            self._failed(error)
            raise
        self._succeeded()
        return result

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` through the pybreaker breaker."""
        self._before(fn, args, kwargs)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self._failed(error)
            raise
        self._succeeded()
        return result

    def record(self, failed: bool) -> None:
        """Record an outcome decided elsewhere (a status code) after `admit()`."""
        if failed:
            self._failed(_Failed(f"{self.name}: failure reported by outcome"))
        else:
            self._succeeded()

    def admit(self) -> None:
        """Ask pybreaker whether a call may start; raise `BreakerOpen` if not."""
        self._before(self.admit, (), {})

    def force_open(self) -> None:
        """pybreaker's own `open()` (shared through its state storage, if it has one)."""
        self.breaker.open()

    def force_closed(self) -> None:
        """pybreaker's own `close()`."""
        self.breaker.close()
