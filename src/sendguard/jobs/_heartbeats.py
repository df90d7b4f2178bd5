"""`Heartbeats`: cron jobs report each run; anything that does not run on cron reads them.

    heartbeats = Heartbeats("redis://localhost:6379/0")

    @heartbeats.heartbeat("nightly-digest", every="24h", grace="1h")
    def nightly_digest() -> None: ...

    with heartbeats.heartbeat("purge-bounces", every="5m"):
        purge_bounces()

Each run records its start, then its success or failure with its duration. ``sendguard
cron status`` lists late, stalled and failing jobs; `Heartbeats` is a `HeartbeatSource`
(``last_beat(name)``: the last success), so ``sendguard.health.HeartbeatProbe`` reads
it directly. A store that cannot be reached never fails the job: the beat is skipped
(with a `StoreUnavailableEvent`), which shows as a late job: an alarm, never silence.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, REDIS_SCHEMES, StoreGate
from sendguard._core.telemetry import Hook, Telemetry
from sendguard.jobs._events import HeartbeatRecorded
from sendguard.jobs._heartbeat_core import CronStatus, HeartbeatRecord, assess, schedule_seconds

__all__ = [
    "HeartbeatCall",
    "HeartbeatStore",
    "Heartbeats",
    "MemoryHeartbeatStore",
    "default_heartbeats",
    "heartbeat",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class HeartbeatStore(Protocol):
    """Where heartbeats are kept. Failures raise `StoreUnavailable`."""

    label: str

    def expect(self, name: str, every: float, grace: float, at: float) -> None:
        """Declare `name`'s schedule (first seen at `at` if new)."""
        ...

    def started(self, name: str, every: float, grace: float, at: float) -> None:
        """`expect`, and a run of `name` started at `at`."""
        ...

    def finished(self, name: str, ok: bool, at: float, duration: float, error: str) -> None:
        """A run of `name` ended at `at` after `duration` seconds."""
        ...

    def read(self, name: str) -> HeartbeatRecord | None:
        """`name`'s record."""
        ...

    def records(self) -> list[HeartbeatRecord]:
        """Every job's record, by name."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryHeartbeatStore:
    """Heartbeats of this process (tests, drills, a scheduler that checks itself)."""

    def __init__(self, label: str = "memory") -> None:
        self.label = label
        self._lock = threading.Lock()
        self._records: dict[str, HeartbeatRecord] = {}

    def _expected(self, name: str, every: float, grace: float, at: float) -> HeartbeatRecord:
        found = self._records.get(name)
        if found is None:
            return HeartbeatRecord(name, every, grace, first_seen=at)
        return dataclasses.replace(found, every=every, grace=grace)

    def expect(self, name: str, every: float, grace: float, at: float) -> None:
        with self._lock:
            self._records[name] = self._expected(name, every, grace, at)

    def started(self, name: str, every: float, grace: float, at: float) -> None:
        with self._lock:
            record = self._expected(name, every, grace, at)
            self._records[name] = dataclasses.replace(record, started_at=at)

    def finished(self, name: str, ok: bool, at: float, duration: float, error: str) -> None:
        with self._lock:
            record = self._records.get(name)
            if record is None:
                return
            if ok:
                record = dataclasses.replace(
                    record,
                    succeeded_at=at,
                    duration=duration,
                    error="",
                    failures=0,
                    runs=record.runs + 1,
                )
            else:
                record = dataclasses.replace(
                    record,
                    failed_at=at,
                    duration=duration,
                    error=error,
                    failures=record.failures + 1,
                    runs=record.runs + 1,
                )
            self._records[name] = record

    def read(self, name: str) -> HeartbeatRecord | None:
        with self._lock:
            return self._records.get(name)

    def records(self) -> list[HeartbeatRecord]:
        with self._lock:
            return [self._records[name] for name in sorted(self._records)]

    def close(self) -> None:
        """Nothing to release."""


def open_heartbeat_store(
    store: str | HeartbeatStore | None, *, timeout: float = DEFAULT_STORE_TIMEOUT
) -> HeartbeatStore:
    """A store from a URL (``memory://``, ``redis://...``), an object, or None (memory)."""
    if store is None or store in ("memory", "memory://"):
        return MemoryHeartbeatStore()
    if isinstance(store, str):
        if store.startswith(REDIS_SCHEMES):
            from sendguard.jobs.redis_store import RedisHeartbeatStore

            return RedisHeartbeatStore(store, timeout=timeout)
        raise ConfigError(f"unknown heartbeat store {store!r}: use memory:// or redis://...")
    return store


class Heartbeats:
    """Records cron runs to a store and judges them (see the module doc).

    Args:
        store: a URL, a `HeartbeatStore`, or None (this process only).
        clock: time source (wall clock for records, monotonic for durations).
    """

    def __init__(
        self,
        store: str | HeartbeatStore | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
    ) -> None:
        self.clock = clock
        self.telemetry = Telemetry(hooks)
        self.store = open_heartbeat_store(store)
        self._gate = StoreGate(self.store.label, "heartbeat", self.telemetry, clock=clock)
        self._inline = isinstance(self.store, MemoryHeartbeatStore)

    def heartbeat(
        self, name: str, *, every: float | str, grace: float | str | None = None
    ) -> HeartbeatCall:
        """A decorator or context manager recording each run of `name`.

        `every`: how often it should succeed (seconds or ``"5m"``). `grace`: how late it
        may be before it counts as stalled (default: a fifth of `every`, at least 60 s,
        as `sendguard.health.HeartbeatProbe` assumes).
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a heartbeat needs a non-empty name, got {name!r}")
        period = schedule_seconds("every", every)
        slack = max(60.0, period / 5) if grace is None else schedule_seconds("grace", grace)
        return HeartbeatCall(self, name, period, slack)

    def register(self, name: str, *, every: float | str, grace: float | str | None = None) -> None:
        """Declare a job before its first run, so a job that never runs shows up stalled."""
        call = self.heartbeat(name, every=every, grace=grace)
        self._write(lambda s: s.expect(name, call.every, call.grace, self.clock.wall()))

    # --- writes: never fail the job ------------------------------------------------------

    def _write(self, op: Callable[[HeartbeatStore], None]) -> None:
        if not self._gate.available():
            return
        try:
            op(self.store)
        except StoreUnavailable as exc:
            self._gate.failed(exc)
        else:
            self._gate.succeeded()

    async def _awrite(self, op: Callable[[HeartbeatStore], None]) -> None:
        if self._inline:
            self._write(op)
        else:
            await asyncio.to_thread(self._write, op)

    def _event(self, name: str, outcome: str, duration: float | None, error: str) -> None:
        self.telemetry.emit(
            HeartbeatRecorded(job=name, outcome=outcome, duration=duration, error=error)
        )

    # --- reads (for `sendguard cron status` and health probes) --------------------------

    def record(self, name: str) -> HeartbeatRecord | None:
        """`name`'s record (raises `StoreUnavailable` if the store cannot be reached)."""
        return self.store.read(name)

    def status(self, name: str) -> CronStatus | None:
        """`name`'s status now (None if it was never seen)."""
        found = self.store.read(name)
        return None if found is None else assess(found, self.clock.wall())

    def statuses(self) -> list[CronStatus]:
        """Every job's status, problems first."""
        now = self.clock.wall()
        order = {"stalled": 0, "failing": 1, "late": 2, "ok": 3}
        found = [assess(record, now) for record in self.store.records()]
        return sorted(found, key=lambda s: (order[s.state.value], s.name))

    def last_beat(self, name: str) -> float | None:
        """Epoch seconds of `name`'s last success (`sendguard.health.HeartbeatSource`)."""
        found = self.store.read(name)
        return None if found is None else found.succeeded_at

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()


class HeartbeatCall:
    """Records one job's runs: use it as ``@decorator`` or ``with``/``async with`` block."""

    def __init__(self, heartbeats: Heartbeats, name: str, every: float, grace: float) -> None:
        self.heartbeats = heartbeats
        self.name = name
        self.every = every
        self.grace = grace
        # Per thread and per asyncio task: overlapping runs each keep their own start.
        self._start: contextvars.ContextVar[float] = contextvars.ContextVar(f"heartbeat:{name}")

    def _start_op(self) -> Callable[[HeartbeatStore], None]:
        at = self.heartbeats.clock.wall()
        self._start.set(self.heartbeats.clock.monotonic())
        self.heartbeats._event(self.name, "started", None, "")
        return lambda s: s.started(self.name, self.every, self.grace, at)

    def _end_op(self, error: BaseException | None) -> Callable[[HeartbeatStore], None]:
        clock = self.heartbeats.clock
        duration = max(0.0, clock.monotonic() - self._start.get(clock.monotonic()))
        at, ok = clock.wall(), error is None
        text = "" if error is None else f"{type(error).__name__}: {error}"[:300]
        self.heartbeats._event(self.name, "succeeded" if ok else "failed", duration, text)
        return lambda s: s.finished(self.name, ok, at, duration, text)

    def __enter__(self) -> HeartbeatCall:
        self.heartbeats._write(self._start_op())
        return self

    def __exit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.heartbeats._write(self._end_op(error))

    async def __aenter__(self) -> HeartbeatCall:
        await self.heartbeats._awrite(self._start_op())
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.heartbeats._awrite(self._end_op(error))

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate `fn` (``def`` or ``async def``): each call is one recorded run."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_run(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with self:
                    return await fn(*args, **kwargs)

            return async_run

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            with self:
                return fn(*args, **kwargs)

        return run


_default: list[Heartbeats] = []
_default_lock = threading.Lock()


def default_heartbeats() -> Heartbeats:
    """The process-wide `Heartbeats` `heartbeat` uses when given none (in memory)."""
    if not _default:
        with _default_lock:
            if not _default:
                _default.append(Heartbeats())
    return _default[0]


def heartbeat(
    name: str,
    *,
    every: float | str,
    grace: float | str | None = None,
    heartbeats: Heartbeats | None = None,
) -> HeartbeatCall:
    """`Heartbeats.heartbeat` on `heartbeats` (default: `default_heartbeats()`)."""
    return (heartbeats or default_heartbeats()).heartbeat(name, every=every, grace=grace)
