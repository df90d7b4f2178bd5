"""`PayloadGuard`: the lean-payload check every enqueue goes through, with its budgets.

The queue adapters (`sendguard.jobs.rq`, `sendguard.jobs.celery`) and the
`lean_payloads` decorator call `PayloadGuard.check` before anything is serialised or
written; it raises `PayloadRejected` naming the function, the queue, the path, the size
and the budget. A `batch()` block adds up the jobs enqueued inside it against the batch
budget (``enqueue_many`` opens one itself).
"""

from __future__ import annotations

import contextvars
import fnmatch
import functools
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sendguard._core.errors import ConfigError
from sendguard._core.telemetry import Hook, Telemetry, register_observable
from sendguard.jobs._errors import PayloadRejected, Violation
from sendguard.jobs._events import PayloadNearBudget, PayloadRefused
from sendguard.jobs._measure import Refusal, advice_for, describe_size, measure_payload, type_name
from sendguard.jobs._payload_policy import PayloadPolicy

__all__ = ["PayloadCheck", "PayloadGuard", "default_guard", "lean_payloads"]

log = logging.getLogger("sendguard")
P = ParamSpec("P")
R = TypeVar("R")
OTHER = "(other)"
"""The queue and function name counters fall back to past `max_tracked` pairs."""
_NO_KWARGS: Mapping[str, Any] = {}


@dataclass(frozen=True, slots=True)
class PayloadCheck:
    """A payload that passed: its JSON size, the budget it had, and whether it warned."""

    size: int
    budget: int
    warned: bool
    policy: PayloadPolicy


class _Batch:
    __slots__ = ("jobs", "limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0
        self.jobs = 0


_batch: contextvars.ContextVar[_Batch | None] = contextvars.ContextVar(
    "sendguard_payload_batch", default=None
)


WARN_EVERY = 60.0
"""Seconds between two warnings for the same queue and function (the count goes on)."""


class _Counts:
    __slots__ = ("bytes", "checked", "largest", "rejected", "warned", "warned_at")

    def __init__(self) -> None:
        self.checked = self.bytes = self.largest = self.rejected = self.warned = 0
        self.warned_at = -math.inf


class PayloadGuard:
    """Checks job payloads against a `PayloadPolicy`: per job, and per batch.

    The policy of a job is the first of: `functions[function]` (exact dotted name, or a
    shell pattern such as ``"app.reports.*"``), `queues[queue]`, `policy`.
    """

    def __init__(
        self,
        policy: PayloadPolicy | None = None,
        *,
        queues: Mapping[str, PayloadPolicy] | None = None,
        functions: Mapping[str, PayloadPolicy] | None = None,
        hooks: Sequence[Hook] | None = None,
        max_tracked: int = 1000,
    ) -> None:
        for field, table in (("queues", queues), ("functions", functions)):
            for name, value in (table or {}).items():
                if not isinstance(value, PayloadPolicy):
                    raise ConfigError(f"{field}[{name!r}] must be a PayloadPolicy, got {value!r}")
        if not isinstance(max_tracked, int) or max_tracked < 1:
            raise ConfigError(f"max_tracked must be a whole number >= 1, got {max_tracked!r}")
        self.policy = policy or PayloadPolicy()
        self.queues = dict(queues or {})
        self.functions = dict(functions or {})
        self.telemetry = Telemetry(hooks)
        self.max_tracked = max_tracked
        self._patterns = [(p, v) for p, v in self.functions.items() if any(c in p for c in "*?[")]
        self._resolved: dict[tuple[str, str | None], PayloadPolicy] = {}
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._lock = threading.Lock()
        for name, unit, read, counter in (
            ("checked", "{payload}", _read("checked"), True),
            ("bytes", "By", _read("bytes"), True),
            ("largest", "By", _read("largest"), False),
        ):
            register_observable(
                f"sendguard.jobs.payload.{name}",
                self,
                f"Job payloads checked at enqueue: {name.replace('_', ' ')}",
                unit,
                read,
                counter=counter,
            )

    def policy_for(self, function: str, queue: str | None = None) -> PayloadPolicy:
        """The policy that applies to `function` enqueued on `queue`."""
        found = self._resolved.get((function, queue))
        if found is not None:
            return found
        found = self.functions.get(function)
        if found is None:
            found = next((v for p, v in self._patterns if fnmatch.fnmatchcase(function, p)), None)
        if found is None and queue is not None:
            found = self.queues.get(queue)
        found = found or self.policy
        if len(self._resolved) < 10_000:  # bounded: names come from code, not from users
            self._resolved[(function, queue)] = found
        return found

    def check(
        self,
        function: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        queue: str | None = None,
    ) -> PayloadCheck:
        """Check one job's payload; `PayloadRejected` if it breaks its policy.

        Inside a `batch()` block the job also counts against the batch's budget.
        """
        policy = self.policy_for(function, queue)
        try:
            size = measure_payload(
                args,
                kwargs or _NO_KWARGS,
                policy.max_bytes,
                extra=policy.extra_types,
                depth=policy.max_depth,
            )
        except Refusal as refusal:
            self.refuse(self._rejection(refusal, function, queue, policy))
            return PayloadCheck(refusal.size, policy.max_bytes, True, policy)
        batch = _batch.get()
        if batch is not None:
            limit = policy.batch_max_bytes if batch.limit is None else batch.limit
            batch.jobs += 1
            batch.used += size
            if batch.used > limit:
                self.refuse(self._over_batch(batch, limit, function, queue))
        warned = policy.warn_bytes is not None and size > policy.warn_bytes
        if self._count(queue, function, size, warned=warned):
            self._warn(function, queue, size, policy)
        return PayloadCheck(size, policy.max_bytes, warned, policy)

    @contextmanager
    def batch(self, max_bytes: int | None = None) -> Iterator[None]:
        """A block whose enqueues share one byte budget (default: each job's
        `batch_max_bytes`). Nested blocks join the outer one. Works across ``await``."""
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1):
            raise ConfigError(f"batch max_bytes must be a whole number >= 1, got {max_bytes!r}")
        if _batch.get() is not None:
            yield
            return
        token = _batch.set(_Batch(max_bytes))
        try:
            yield
        finally:
            _batch.reset(token)

    # --- rejections and warnings --------------------------------------------------------

    def _rejection(
        self, refusal: Refusal, function: str, queue: str | None, policy: PayloadPolicy
    ) -> PayloadRejected:
        where, value = refusal.where(), refusal.value
        on = f"{function} on queue {queue!r}" if queue is not None else function
        advice = advice_for(refusal.violation, value, policy.max_depth)
        budget: int | None = None
        if refusal.violation is Violation.SIZE:
            budget = policy.max_bytes
            what = _piece(value)
            message = (
                f"{on}: the payload is over its {describe_size(budget)} budget (at least "
                f"{describe_size(refusal.size)}; {where} is {what}): {advice}"
            )
        elif refusal.violation is Violation.KEY:
            message = f"{on}: {where} has a {type_name(value)} key {value!r}: {advice}"
        elif refusal.violation is Violation.VALUE:
            message = f"{on}: {where} is {_short(value)}: {advice}"
        elif refusal.violation is Violation.DEPTH:
            message = f"{on}: {where}: {advice}"
        else:
            message = f"{on}: {where} is {type_name(value)}: {advice}"
        return PayloadRejected(
            message,
            function=function,
            queue=queue,
            path=where,
            violation=refusal.violation,
            size=refusal.size,
            budget=budget,
            advice=advice,
        )

    def _over_batch(
        self, batch: _Batch, limit: int, function: str, queue: str | None
    ) -> PayloadRejected:
        on = f" on queue {queue!r}" if queue is not None else ""
        advice = advice_for(Violation.BATCH, None, 0)
        message = (
            f"batch{on}: job {batch.jobs} ({function}) takes the batch to "
            f"{describe_size(batch.used)}, over its {describe_size(limit)} budget: {advice}"
        )
        return PayloadRejected(
            message,
            function=function,
            queue=queue,
            path="",
            violation=Violation.BATCH,
            size=batch.used,
            budget=limit,
            advice=advice,
        )

    def refuse(self, error: PayloadRejected) -> None:
        """Count and report a rejection, then raise it (or, when the policy of its function
        and queue does not enforce, log it and return). Adapters send their own
        rejections (a bound method, a stored job too large to requeue) through here."""
        policy = self.policy_for(error.function, error.queue)
        self._count(error.queue, error.function, 0, rejected=True)
        self.telemetry.emit(
            PayloadRefused(
                queue=error.queue or "",
                function=error.function,
                violation=error.violation.value,
                enforced=policy.enforce,
                path=error.path,
                size=error.size,
                budget=error.budget,
            )
        )
        if policy.enforce:
            raise error
        log.warning("sendguard: payload would be rejected (enforce=False): %s", error)

    def _warn(self, function: str, queue: str | None, size: int, policy: PayloadPolicy) -> None:
        """Log and emit `PayloadNearBudget` (rate-limited per queue and function)."""
        assert policy.warn_bytes is not None
        log.warning(
            "sendguard: %s%s: payload of %s is over the %s warning threshold (budget %s)",
            function,
            f" on queue {queue!r}" if queue else "",
            describe_size(size),
            describe_size(policy.warn_bytes),
            describe_size(policy.max_bytes),
        )
        self.telemetry.emit(
            PayloadNearBudget(
                queue=queue or "",
                function=function,
                size=size,
                warn_bytes=policy.warn_bytes,
                budget=policy.max_bytes,
            )
        )

    # --- counters ---------------------------------------------------------------------

    def _count(
        self,
        queue: str | None,
        function: str,
        size: int,
        *,
        rejected: bool = False,
        warned: bool = False,
    ) -> bool:
        """Count a check; True when a warning is due (at most one a `WARN_EVERY` per pair)."""
        key = (queue or "", function)
        with self._lock:
            counts = self._counts.get(key)
            if counts is None:
                if len(self._counts) >= self.max_tracked:
                    key = (OTHER, OTHER)
                counts = self._counts.setdefault(key, _Counts())
            if rejected:
                counts.rejected += 1
                return False
            counts.checked += 1
            counts.bytes += size
            counts.largest = max(counts.largest, size)
            if not warned:
                return False
            counts.warned += 1
            now = time.monotonic()
            if now - counts.warned_at < WARN_EVERY:
                return False
            counts.warned_at = now
            return True

    def stats(self) -> dict[tuple[str, str], dict[str, int]]:
        """``{(queue, function): {'checked', 'bytes', 'largest', 'rejected', 'warned'}}``."""
        with self._lock:
            return {
                key: {
                    "checked": c.checked,
                    "bytes": c.bytes,
                    "largest": c.largest,
                    "rejected": c.rejected,
                    "warned": c.warned,
                }
                for key, c in self._counts.items()
            }


def _read(field: str) -> Callable[[PayloadGuard], Iterable[tuple[float, dict[str, str]]]]:
    def read(guard: PayloadGuard) -> Iterable[tuple[float, dict[str, str]]]:
        for (queue, function), values in guard.stats().items():
            yield values[field], {"queue": queue, "function": function}

    return read


def _piece(value: object) -> str:
    if isinstance(value, str | bytes):
        return f"a {describe_size(len(value))} {type(value).__name__}"
    if isinstance(value, list | tuple | dict):
        return f"a {type(value).__name__} of {len(value):,} items"
    return type_name(value)


def _short(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an int of {value.bit_length():,} bits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text):,} chars)"


_default: list[PayloadGuard] = []
_default_lock = threading.Lock()


def default_guard() -> PayloadGuard:
    """The process-wide guard with the default `PayloadPolicy` (made on first use)."""
    if not _default:
        with _default_lock:
            if not _default:
                _default.append(PayloadGuard())
    return _default[0]


def lean_payloads(
    guard: PayloadGuard | None = None, *, queue: str | None = None, function: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Check the arguments of every call of an enqueue function (``def`` or ``async def``).

    For queues without an adapter: decorate the function that sends a job, and its
    arguments are checked as the job's payload before it runs. `function` names the
    job in errors (default: the decorated function's dotted name).
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = function or f"{fn.__module__}.{fn.__qualname__}"

        def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            (guard or default_guard()).check(name, args, kwargs, queue=queue)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_checked(*args: P.args, **kwargs: P.kwargs) -> Any:
                check(args, kwargs)
                return await fn(*args, **kwargs)

            return async_checked  # type: ignore[return-value]

        @functools.wraps(fn)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            check(args, kwargs)
            return fn(*args, **kwargs)

        return checked

    return decorate
