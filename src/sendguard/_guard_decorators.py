"""``@guard.route(pattern)``: the Guard's policies around any function, sync or async."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sendguard._route_policy import Refusal
from sendguard._routes import parse_pattern
from sendguard.ratelimit._request import RequestInfo

if TYPE_CHECKING:
    from sendguard._guard import Guard

__all__ = ["route_decorator"]

F = TypeVar("F", bound=Callable[..., Any])


def route_decorator(
    guard: Guard, pattern: str, key: Callable[..., object] | None
) -> Callable[[F], F]:
    """The decorator `Guard.route` returns (see its docstring)."""
    compiled = parse_pattern(pattern)
    method, _, path = compiled.text.partition(" ")
    request = RequestInfo(method, path, compiled.text, {}, "local")

    def key_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if key is None:
            return "route"
        try:
            return str(key(*args, **kwargs))
        except Exception:  # a key function bug must not fail the call
            return "route"

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_guarded(*args: Any, **kwargs: Any) -> Any:
                try:
                    admitted = await guard.aenter(request, key_of(args, kwargs))
                except Refusal as refusal:
                    raise refusal.error from None
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as error:
                    await guard.aleave(admitted, None, error)
                    raise
                await guard.aleave(admitted, getattr(result, "status_code", None))
                return result

            return cast(F, async_guarded)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                admitted = guard.enter(request, key_of(args, kwargs))
            except Refusal as refusal:
                raise refusal.error from None
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:
                guard.leave(admitted, None, error)
                raise
            guard.leave(admitted, getattr(result, "status_code", None))
            return result

        return cast(F, guarded)

    return decorate
