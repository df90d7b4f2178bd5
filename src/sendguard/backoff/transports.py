"""httpx transports that retry: `RetryTransport` (sync) and `AsyncRetryTransport`.

    client = httpx.Client(transport=RetryTransport(policy=RetryPolicy(deadline=10)))

Each wraps any inner transport (by default httpx's own), so connection pooling, proxies,
HTTP/2 and mocks keep working. A request is retried only when that is safe (an
idempotent method, or an ``Idempotency-Key``, which the transport can add to POST and
PATCH) and only on 429, 502, 503, 504 and transport errors that mean no answer came.
Retry-After and RateLimit ``t`` set a floor on the wait. Each host has a retry budget,
and optionally a circuit breaker from a `BreakerRegistry`: while it is open, requests to
that host fail fast with `BreakerOpen` and nothing is sent.

This module imports httpx; ``pip install sendguard[http]``.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import httpx

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, Rejected
from sendguard._core.telemetry import Hook, Telemetry
from sendguard.backoff._budget import Budgets
from sendguard.backoff._engine import Attempt, RetryEngine, RetryRun, RetryStats
from sendguard.backoff._hints import hint_from
from sendguard.backoff._http import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENT_METHODS,
    RETRY_STATUSES,
    error_reason,
    may_retry,
)
from sendguard.backoff._policy import RetryPolicy
from sendguard.backoff._retrier import register_metrics
from sendguard.breakers import Outcome

if TYPE_CHECKING:
    from sendguard.breakers import BreakerRegistry, CircuitBreaker

__all__ = ["AsyncRetryTransport", "RetryTransport"]

_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_KEYED_METHODS = frozenset({"POST", "PATCH"})
_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


class _Retrying:
    """What the sync and async transports share: the rules, the engine and the bookkeeping."""

    def __init__(
        self,
        policy: RetryPolicy | None,
        *,
        methods: frozenset[str],
        statuses: frozenset[int],
        idempotency_keys: bool,
        breakers: BreakerRegistry | None,
        name: str,
        budgets: Budgets | None,
        clock: Clock,
        hooks: Sequence[Hook] | None,
        rng: random.Random | None,
    ) -> None:
        policy = RetryPolicy() if policy is None else policy
        if not isinstance(policy, RetryPolicy):
            raise ConfigError(f"a retry transport needs a RetryPolicy, got {policy!r}")
        if not all(isinstance(m, str) and m.isupper() for m in methods):
            raise ConfigError(f"methods must be upper-case HTTP methods, got {methods!r}")
        if not all(isinstance(s, int) and 400 <= s <= 599 for s in statuses):
            raise ConfigError(f"statuses must be HTTP error codes (400-599), got {statuses!r}")
        if breakers is not None and not hasattr(breakers, "provider"):
            raise ConfigError(f"breakers must be a BreakerRegistry, got {breakers!r}")
        if budgets is not None and not isinstance(budgets, Budgets):
            raise ConfigError(f"budgets must be a Budgets, got {budgets!r}")
        self.policy = policy
        self.methods = frozenset(methods)
        self.statuses = frozenset(statuses)
        self.idempotency_keys = bool(idempotency_keys)
        self.breakers = breakers
        self.name = name
        self.engine = RetryEngine(
            policy, name=name, clock=clock, telemetry=Telemetry(hooks), budgets=budgets, rng=rng
        )
        self.stats: RetryStats = self.engine.stats
        self._tick = self.stats.tick
        self._timed = policy.attempt_timeout is not None or policy.deadline is not None
        register_metrics(self)

    def _eligible(self, request: httpx.Request) -> bool:
        """May this request be retried? Adds an Idempotency-Key first when asked to."""
        method = request.method
        if method in self.methods:
            return True
        if (
            self.idempotency_keys
            and method in _KEYED_METHODS
            and IDEMPOTENCY_HEADER not in request.headers
        ):
            request.headers[IDEMPOTENCY_HEADER] = str(uuid.uuid4())
        return may_retry(method, request.headers, self.methods)

    def _bounded(self, request: httpx.Request, start: float) -> None:
        """Cap the request's timeouts at the attempt timeout and what is left of the deadline."""
        limit = self.engine.attempt_timeout(start, self.engine.now())
        if limit is None:
            return
        limit = max(limit, 1e-3)  # zero would mean "no timeout" to some transports
        current = request.extensions.get("timeout") or {}
        bounded = {}
        for key in _TIMEOUT_KEYS:
            value = current.get(key)
            bounded[key] = limit if value is None else min(float(value), limit)
        request.extensions = {**request.extensions, "timeout": bounded}

    def _breaker(self, request: httpx.Request) -> CircuitBreaker | None:
        if self.breakers is None:
            return None
        return self.breakers.provider(_netloc(request))

    @staticmethod
    def _breaker_outcome(breaker: CircuitBreaker, response: httpx.Response) -> Outcome:
        if breaker.policy.classify_result is not None:
            return breaker.outcome_of(response)
        if response.status_code >= 500:
            return Outcome.FAILURE
        return Outcome.IGNORED if response.status_code == 429 else Outcome.SUCCESS

    def _answered(self, response: httpx.Response, eligible: bool) -> Attempt:
        status = response.status_code
        if status not in self.statuses:
            ok = status < 500 and status != 429
            return Attempt(result=response, retryable=False, reason="success" if ok else "status")
        hint = hint_from(response, self.engine.clock.wall())
        return Attempt(result=response, retryable=eligible, reason=f"status_{status}", hint=hint)

    def _errored(self, error: Exception, eligible: bool) -> Attempt:
        retryable = eligible and isinstance(error, _TRANSIENT) and not isinstance(error, Rejected)
        return Attempt(error=error, retryable=retryable, reason=error_reason(error))

    def _settled(self, attempt: Attempt, request: httpx.Request, retried: bool) -> httpx.Response:
        """The response to hand back once retrying is over (or raise the last error)."""
        if attempt.error is not None:
            raise attempt.error
        if attempt.reason == "success" and self.engine.budgets is not None:
            self.engine.succeeded(_netloc(request), retried)
        assert isinstance(attempt.result, httpx.Response)
        return attempt.result


def _netloc(request: httpx.Request) -> str:
    return request.url.netloc.decode("ascii", "replace")


class RetryTransport(_Retrying, httpx.BaseTransport):
    """An httpx transport that retries through `transport` under `policy`.

    Args:
        transport: the inner transport (default ``httpx.HTTPTransport()``).
        policy: attempts, backoff, deadline, per-attempt timeout, budget.
        methods: the methods retried without an idempotency key.
        statuses: the answers retried.
        idempotency_keys: add a random ``Idempotency-Key`` to POST and PATCH requests
            that have none, so they may be retried (the server must honour the header).
        breakers: a `BreakerRegistry`; each host gets the breaker ``provider:<host>``.
        name: the client's name in telemetry.
        budgets: a shared `Budgets` (default: one of this transport's own, from the policy).
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        *,
        methods: frozenset[str] = IDEMPOTENT_METHODS,
        statuses: frozenset[int] = RETRY_STATUSES,
        idempotency_keys: bool = False,
        breakers: BreakerRegistry | None = None,
        name: str = "http",
        budgets: Budgets | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise ConfigError(f"transport must be an httpx.BaseTransport, got {transport!r}")
        super().__init__(
            policy, methods=methods, statuses=statuses, idempotency_keys=idempotency_keys,
            breakers=breakers, name=name, budgets=budgets, clock=clock, hooks=hooks, rng=rng,
        )  # fmt: skip
        self.transport = transport or httpx.HTTPTransport()

    def _send(self, request: httpx.Request, start: float, eligible: bool) -> Attempt:
        if self._timed:
            self._bounded(request, start)
        breaker = self._breaker(request)
        try:
            if breaker is None:
                response = self.transport.handle_request(request)
            else:
                with breaker.guard() as call:
                    response = self.transport.handle_request(request)
                    call.outcome(self._breaker_outcome(breaker, response))
        except Exception as error:
            return self._errored(error, eligible)
        return self._answered(response, eligible)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`, retrying it while the policy, the rules and the budget allow."""
        engine = self.engine
        start = engine.now()
        eligible = self._eligible(request)
        if eligible and not isinstance(request.stream, httpx.ByteStream):
            request.read()  # a streamed body is buffered so that it can be sent again
        attempt = self._send(request, start, eligible)
        self._tick()
        if not attempt.retryable:
            return self._settled(attempt, request, False)
        run = RetryRun(start, _netloc(request))
        while (delay := engine.next_delay(run, attempt)) is not None:
            if isinstance(attempt.result, httpx.Response):
                attempt.result.close()
            engine.clock.sleep(delay)
            attempt = self._send(request, start, eligible)
        return self._settled(attempt, request, True)

    def close(self) -> None:
        """Close the inner transport."""
        self.transport.close()


class AsyncRetryTransport(_Retrying, httpx.AsyncBaseTransport):
    """`RetryTransport` for ``httpx.AsyncClient`` (inner: ``httpx.AsyncHTTPTransport()``)."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        *,
        methods: frozenset[str] = IDEMPOTENT_METHODS,
        statuses: frozenset[int] = RETRY_STATUSES,
        idempotency_keys: bool = False,
        breakers: BreakerRegistry | None = None,
        name: str = "http",
        budgets: Budgets | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigError(f"transport must be an httpx.AsyncBaseTransport, got {transport!r}")
        super().__init__(
            policy, methods=methods, statuses=statuses, idempotency_keys=idempotency_keys,
            breakers=breakers, name=name, budgets=budgets, clock=clock, hooks=hooks, rng=rng,
        )  # fmt: skip
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def _send(self, request: httpx.Request, start: float, eligible: bool) -> Attempt:
        if self._timed:
            self._bounded(request, start)
        breaker = self._breaker(request)
        try:
            if breaker is None:
                response = await self.transport.handle_async_request(request)
            else:
                async with breaker.guard() as call:
                    response = await self.transport.handle_async_request(request)
                    call.outcome(self._breaker_outcome(breaker, response))
        except Exception as error:
            return self._errored(error, eligible)
        return self._answered(response, eligible)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`, retrying it while the policy, the rules and the budget allow."""
        engine = self.engine
        start = engine.now()
        eligible = self._eligible(request)
        if eligible and not isinstance(request.stream, httpx.ByteStream):
            await request.aread()
        attempt = await self._send(request, start, eligible)
        self._tick()
        if not attempt.retryable:
            return self._settled(attempt, request, False)
        run = RetryRun(start, _netloc(request))
        while (delay := engine.next_delay(run, attempt)) is not None:
            if isinstance(attempt.result, httpx.Response):
                await attempt.result.aclose()
            await engine.clock.asleep(delay)
            attempt = await self._send(request, start, eligible)
        return self._settled(attempt, request, True)

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self.transport.aclose()
