"""Ways to run code through a breaker: the `guard()` context manager and decorators."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast, overload

from sendguard._core.errors import BreakerOpen
from sendguard.breakers._breaker import CircuitBreaker
from sendguard.breakers._policy import Outcome

__all__ = ["BreakerCall", "Guarded", "protect"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class Guarded(Protocol):
    """Anything that runs calls through a breaker (`CircuitBreaker`, an adopted pybreaker)."""

    name: str

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn` through the breaker."""
        ...

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await `fn` through the breaker."""
        ...


class BreakerCall:
    """The body of a ``with cb.guard()`` block, run through the breaker.

    Entering admits the call (or raises `BreakerOpen`); leaving records the outcome: the
    exception's classification, else the value given to `result`, else success. Call
    `result(value)` with what the block got back (an HTTP response, an SMTP reply) so the
    policy's `classify_result` can judge it, or `outcome(...)` to say it directly.
    """

    __slots__ = ("_breaker", "_outcome", "_start", "_ticket")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._ticket = -1
        self._start = 0.0
        self._outcome: Outcome | None = None

    def result(self, value: object) -> None:
        """Judge the block by `value` through the policy's `classify_result`."""
        self._outcome = self._breaker.outcome_of(value)

    def outcome(self, outcome: Outcome) -> None:
        """Set the block's outcome directly."""
        self._outcome = outcome

    def _judge(self, error: BaseException | None) -> Outcome:
        if error is not None:
            return self._breaker.policy.classify_exception(error)
        return self._outcome or Outcome.SUCCESS

    def __enter__(self) -> BreakerCall:
        self._start = self._breaker.clock.monotonic()
        self._ticket = self._breaker.admit(self._start)
        return self

    def __exit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = self._breaker.clock.monotonic() - self._start
        self._breaker.finish(self._ticket, self._judge(error), elapsed)

    async def __aenter__(self) -> BreakerCall:
        self._start = self._breaker.clock.monotonic()
        self._ticket = await self._breaker.aadmit(self._start)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = self._breaker.clock.monotonic() - self._start
        await self._breaker.afinish(self._ticket, self._judge(error), elapsed)


@overload
def protect(
    breaker: Guarded | Callable[..., Guarded],
    fn: Callable[P, Coroutine[Any, Any, R]],
    fallback: Callable[P, Awaitable[R]] | Callable[P, R] | None = None,
) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def protect(
    breaker: Guarded | Callable[..., Guarded],
    fn: Callable[P, R],
    fallback: Callable[P, R] | None = None,
) -> Callable[P, R]: ...


def protect(
    breaker: Guarded | Callable[..., Guarded],
    fn: Callable[P, Any],
    fallback: Callable[P, Any] | None = None,
) -> Callable[P, Any]:
    """Wrap `fn` (sync or async) so every call runs through `breaker`.

    `breaker` may be a function of the call's arguments that returns the breaker (a
    breaker per tenant or provider). With `fallback`, a refused call returns
    ``fallback(*args, **kwargs)`` (awaited if it is a coroutine) instead of raising.
    """
    fixed: Guarded | None = breaker if hasattr(breaker, "acall") else None  # type: ignore[assignment]
    pick = cast(Callable[..., Guarded], breaker)

    def resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Guarded:
        return fixed if fixed is not None else pick(*args, **kwargs)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return await resolve(args, kwargs).acall(fn, *args, **kwargs)
            except BreakerOpen:
                if fallback is None:
                    raise
                value = fallback(*args, **kwargs)
                return await value if inspect.isawaitable(value) else value

        return async_wrapper

    if fixed is not None and fallback is None:
        call = fixed.call

        @functools.wraps(fn)
        def direct(*args: P.args, **kwargs: P.kwargs) -> Any:
            return call(fn, *args, **kwargs)

        return direct

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return resolve(args, kwargs).call(fn, *args, **kwargs)
        except BreakerOpen:
            if fallback is None:
                raise
            return fallback(*args, **kwargs)

    return wrapper
