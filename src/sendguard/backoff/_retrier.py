"""Retrying any function, sync or async: `Retrier`, the `retry` decorator, `transient_error`.

The success path is the function call, a counter tick and a look at the budget: nothing
is built unless the first attempt fails. Then a `RetryRun` is made and a small loop
(one for ``def``, one for ``async def``) asks the shared `RetryEngine` after every
failure how long to wait, or whether to stop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, Rejected
from sendguard._core.telemetry import Hook, Telemetry, register_observable
from sendguard.backoff._budget import Budgets
from sendguard.backoff._engine import Attempt, RetryEngine, RetryRun, RetryStats
from sendguard.backoff._hints import hint_from, response_of
from sendguard.backoff._http import RETRY_STATUSES, error_reason
from sendguard.backoff._policy import RetryPolicy

__all__ = ["ErrorFilter", "Retrier", "retry", "transient_error"]

P = ParamSpec("P")
T = TypeVar("T")

ErrorFilter = (
    type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]
)
"""Which exceptions to retry: a type, a tuple of types, or a predicate."""


def transient_error(error: BaseException) -> bool:
    """True for errors that say "try again later" (the default `on` of every retrier).

    Connection errors and timeouts (builtin, httpx's and requests'), and HTTP status
    errors whose response is a 429, 502, 503 or 504. Never a sendguard `Rejected`
    (a breaker that refused is meant to fail fast).
    """
    if isinstance(error, Rejected):
        return False
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(
        error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    ):
        return True
    requests = sys.modules.get("requests")
    if requests is not None and isinstance(error, requests.ConnectionError | requests.Timeout):
        return True
    response = response_of(error)
    return response is not None and getattr(response, "status_code", None) in RETRY_STATUSES


def error_filter(on: object) -> Callable[[BaseException], bool]:
    """`on` as a predicate; `ConfigError` if it is neither exception types nor callable."""
    if isinstance(on, type) and issubclass(on, BaseException):
        kinds: tuple[type[BaseException], ...] = (on,)
    elif isinstance(on, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in on
    ):
        kinds = on
    elif callable(on):
        return on
    else:
        raise ConfigError(f"on= must be exception types or a predicate, got {on!r}")
    return lambda error: isinstance(error, kinds) and not isinstance(error, Rejected)


class Retrier:
    """Retries calls of any function under one policy and one budget.

    Use it as a decorator (``@retrier`` on ``def`` or ``async def``) or directly
    (``retrier.call(fn, *args)``, ``await retrier.acall(fn, *args)``). An exception that
    `on` accepts, or a result that `retry_if_result` flags, is retried; anything else is
    returned or raised at once. When the retries stop, the last exception is raised
    (or the last result returned). The policy's per-attempt timeout (and what is left
    of its deadline) bounds each attempt of a coroutine; a plain function cannot be
    interrupted, so for it the deadline only stops further waits and attempts.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        on: ErrorFilter = transient_error,
        retry_if_result: Callable[[Any], bool] | None = None,
        name: str = "default",
        budgets: Budgets | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        policy = RetryPolicy() if policy is None else policy
        if not isinstance(policy, RetryPolicy):
            raise ConfigError(f"Retrier needs a RetryPolicy, got {policy!r}")
        if retry_if_result is not None and not callable(retry_if_result):
            raise ConfigError(f"retry_if_result must be callable, got {retry_if_result!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a retrier name must be a non-empty string, got {name!r}")
        if budgets is not None and not isinstance(budgets, Budgets):
            raise ConfigError(f"budgets must be a Budgets, got {budgets!r}")
        self.policy = policy
        self.name = name
        self.retries = error_filter(on)
        self.retry_if_result = retry_if_result
        self.engine = RetryEngine(
            policy, name=name, clock=clock, telemetry=Telemetry(hooks), budgets=budgets, rng=rng
        )
        self.stats: RetryStats = self.engine.stats
        self._now = self.engine.now
        self._tick = self.stats.tick
        self._bucket = self.engine.bucket("")
        self._timed = policy.attempt_timeout is not None or policy.deadline is not None
        register_metrics(self)

    def __repr__(self) -> str:
        return f"Retrier({self.name!r}, {self.policy!r})"

    # --- classification ------------------------------------------------------------------

    def _failed(self, error: BaseException, timed_out: bool = False) -> Attempt:
        if timed_out:
            return Attempt(error=error, retryable=True, reason="attempt_timeout")
        if not self.retries(error):
            return Attempt(error=error, retryable=False, reason=error_reason(error))
        response = response_of(error)
        status = getattr(response, "status_code", None)
        reason = f"status_{status}" if isinstance(status, int) else error_reason(error)
        hint = hint_from(error, self.engine.clock.wall())
        return Attempt(error=error, retryable=True, reason=reason, hint=hint)

    def _returned(self, result: object) -> Attempt:
        check = self.retry_if_result
        if check is None or not check(result):
            return Attempt(result=result, retryable=False, reason="success")
        status = getattr(result, "status_code", None)
        reason = f"status_{status}" if isinstance(status, int) else "result"
        hint = hint_from(result, self.engine.clock.wall())
        return Attempt(result=result, retryable=True, reason=reason, hint=hint)

    def _exhausted(self, attempt: Attempt, run: RetryRun) -> Any:
        """What a call that stopped retrying gives back: its last error or result."""
        if attempt.error is not None:
            raise attempt.error
        return attempt.result

    def _success(self) -> None:
        bucket = self._bucket
        if bucket is not None and bucket.tokens < bucket.capacity:
            bucket.succeeded()

    # --- sync ---------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)``, retrying under the policy."""
        start = self._now()
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            attempt = self._failed(error)
            if not attempt.retryable:
                self._tick()
                raise
        else:
            if self.retry_if_result is None:
                self._tick()
                self._success()
                return result
            attempt = self._returned(result)
            if not attempt.retryable:
                self._tick()
                self._success()
                return result
        return self._run(fn, args, kwargs, start, attempt)  # type: ignore[no-any-return]

    def _conclude(self, attempt: Attempt, run: RetryRun) -> Any:
        """No more attempts: return the last one's result or raise its error."""
        if attempt.retryable:
            return self._exhausted(attempt, run)
        if attempt.error is not None:
            raise attempt.error
        self.engine.succeeded(run.key, retried=True)
        return attempt.result

    def _run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        attempt: Attempt,
    ) -> Any:
        self._tick()
        engine = self.engine
        run = RetryRun(start, "", fn, args, kwargs)
        while True:
            delay = engine.next_delay(run, attempt)
            if delay is None:
                return self._conclude(attempt, run)
            engine.clock.sleep(delay)
            try:
                attempt = self._returned(fn(*args, **kwargs))
            except Exception as error:
                attempt = self._failed(error)

    # --- async --------------------------------------------------------------------------

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)``, retrying under the policy."""
        start = self._now()
        timeout = self.engine.attempt_timeout(start, start) if self._timed else None
        try:
            if timeout is None:
                result = await fn(*args, **kwargs)
            else:
                result = await _bounded(fn(*args, **kwargs), timeout)
        except Exception as error:
            attempt = self._failed(error, isinstance(error, _AttemptTimedOut))
            if not attempt.retryable:
                self._tick()
                raise
        else:
            if self.retry_if_result is None:
                self._tick()
                self._success()
                return result
            attempt = self._returned(result)
            if not attempt.retryable:
                self._tick()
                self._success()
                return result
        return await self._arun(fn, args, kwargs, start, attempt)  # type: ignore[no-any-return]

    async def _arun(
        self,
        fn: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        attempt: Attempt,
    ) -> Any:
        self._tick()
        engine = self.engine
        run = RetryRun(start, "", fn, args, kwargs)
        while True:
            delay = engine.next_delay(run, attempt)
            if delay is None:
                return self._conclude(attempt, run)
            await engine.clock.asleep(delay)
            timeout = engine.attempt_timeout(run.start, engine.now()) if self._timed else None
            try:
                if timeout is None:
                    attempt = self._returned(await fn(*args, **kwargs))
                else:
                    attempt = self._returned(await _bounded(fn(*args, **kwargs), timeout))
            except Exception as error:
                attempt = self._failed(error, isinstance(error, _AttemptTimedOut))

    # --- decorator ----------------------------------------------------------------------

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate `fn` (``def`` or ``async def``) so its calls are retried."""
        if inspect.iscoroutinefunction(fn):
            acall = self.acall

            @functools.wraps(fn)
            async def async_retrying(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await acall(fn, *args, **kwargs)

            return async_retrying
        call = self.call

        @functools.wraps(fn)
        def retrying(*args: P.args, **kwargs: P.kwargs) -> Any:
            return call(fn, *args, **kwargs)

        return retrying


class _AttemptTimedOut(TimeoutError):
    """An attempt ran out of the time the policy gives it (per-attempt timeout or deadline)."""


async def _bounded(awaitable: Awaitable[T], seconds: float) -> T:
    """Await `awaitable` for at most `seconds`; `_AttemptTimedOut` if it takes longer."""
    scope = asyncio.timeout(seconds)
    try:
        async with scope:
            return await awaitable
    except TimeoutError as error:
        if scope.expired():
            raise _AttemptTimedOut(f"attempt took more than {seconds:.3g} s") from error
        raise


def retry(
    policy: RetryPolicy | None = None,
    *,
    on: ErrorFilter = transient_error,
    retry_if_result: Callable[[Any], bool] | None = None,
    name: str = "default",
    budgets: Budgets | None = None,
    clock: Clock = SYSTEM_CLOCK,
    hooks: Sequence[Hook] | None = None,
) -> Retrier:
    """A decorator that retries a ``def`` or ``async def`` function under `policy`.

    ``@retry(RetryPolicy(attempts=5, deadline=30), on=ConnectionError)``. The returned
    `Retrier` can also run calls directly (`Retrier.call`, `Retrier.acall`).
    """
    return Retrier(
        policy,
        on=on,
        retry_if_result=retry_if_result,
        name=name,
        budgets=budgets,
        clock=clock,
        hooks=hooks,
    )


def register_metrics(owner: Any) -> None:
    """Report `owner.stats` (attempts, seconds waited) through observable instruments."""
    register_observable(
        "sendguard.backoff.attempts",
        owner,
        "Attempts made by sendguard retriers and transports (first attempts and retries)",
        "{attempt}",
        _read_attempts,
    )
    register_observable(
        "sendguard.backoff.wait_time",
        owner,
        "Seconds sendguard retriers and transports spent waiting between attempts",
        "s",
        _read_waited,
    )


def _read_attempts(owner: Any) -> Iterable[tuple[float, dict[str, str]]]:
    yield owner.stats.attempts, {"client": owner.name}


def _read_waited(owner: Any) -> Iterable[tuple[float, dict[str, str]]]:
    yield owner.stats.waited, {"client": owner.name}
