"""A breaker's decorator and context-manager forms: ``@cb``, ``cb.protect()``, ``cb.guard()``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

if TYPE_CHECKING:
    from sendguard.breakers._breaker import CircuitBreaker
    from sendguard.breakers._calls import BreakerCall

__all__ = ["CallForms"]

P = ParamSpec("P")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CallForms:
    """Mixed into `CircuitBreaker`: the ways to run code through it besides `call`/`acall`."""

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate `fn` (``def`` or ``async def``) so its calls run through this breaker."""
        from sendguard.breakers._calls import protect

        return protect(cast("CircuitBreaker", self), fn)

    def protect(self, *, fallback: Callable[..., Any] | None = None) -> Callable[[F], F]:
        """A decorator like ``@cb`` whose refused calls return ``fallback(*args, **kwargs)``."""
        from sendguard.breakers._calls import protect

        def decorate(fn: F) -> F:
            return cast(F, protect(cast("CircuitBreaker", self), fn, fallback))

        return decorate

    def guard(self) -> BreakerCall:
        """A context manager (``with`` or ``async with``) that runs its body through the breaker."""
        from sendguard.breakers._calls import BreakerCall

        return BreakerCall(cast("CircuitBreaker", self))
