"""The health registry: runs probes concurrently in the background and answers from memory.

    registry = HealthRegistry([PostgresProbe(APP_DSN), RedisProbe(REDIS_URL)], interval=5)
    registry.start()              # background refresher (a daemon thread)
    report = registry.readiness() # from memory: no I/O, no load on any dependency

Each probe runs on its own short-lived daemon thread, so probes never wait for one
another and a hanging one costs one thread (it is not started again until it returns;
while it hangs it is reported failed, first at its timeout, then again each time it is
due). A result older than its maximum age (default: two intervals plus the probe's
timeout) counts as failed, so a refresher that stopped cannot leave a stale "pass".

`check_now()` and `await acheck_now()` run every probe at once and wait for the results
(the command line and tests use them); both are thin loops around the same steps.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard._core.telemetry import Hook, Telemetry, register_observable
from sendguard.health._events import ProbeChecked, ProbeStatusChanged
from sendguard.health._probe import Probe, describe_error, run_probe, validate_probe_settings
from sendguard.health._report import (
    CheckState,
    HealthReport,
    aggregate,
    is_stale,
    liveness_report,
)
from sendguard.health._result import ProbeResult
from sendguard.health._schedule import Schedule

__all__ = ["HealthRegistry"]

_MIN_INTERVAL, _MAX_INTERVAL = 0.05, 86_400.0
_forks = [0]
"""How many times this process was forked from its parent line: a child's refreshers
must be started again (threads do not survive a fork)."""


def _after_fork_in_child() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_interval(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and _MIN_INTERVAL <= value <= _MAX_INTERVAL)
    ):
        raise ConfigError(
            f"HealthRegistry.{name} must be {_MIN_INTERVAL:g} to {_MAX_INTERVAL:g} seconds, "
            f"got {value!r}"
        )
    return float(value)


@dataclass(slots=True)
class _Entry:
    probe: Probe
    state: CheckState
    interval: float


class HealthRegistry:
    """Probes, their cached results, and the background refresher that keeps them fresh.

    Args:
        probes: the probes (more can be added with `add`).
        interval: seconds between two checks of a probe (per probe with `add`).
        max_age: seconds after which a result counts as failed (default: two intervals
            plus the probe's timeout).
        clock: the time source (a `FakeClock` in tests).
        hooks: telemetry hooks (default: OpenTelemetry metrics).
        description: the ``description`` of the health+json document.
    """

    def __init__(
        self,
        probes: Iterable[Probe] = (),
        *,
        interval: float = 5.0,
        max_age: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        description: str = "",
    ) -> None:
        self.interval = _check_interval("interval", interval)
        self.max_age = None if max_age is None else _check_interval("max_age", max_age)
        self.clock = clock
        self.telemetry = Telemetry(hooks)
        self.description = description
        self._entries: dict[str, _Entry] = {}
        self._schedule = Schedule()
        self._futures: dict[str, Future[ProbeResult]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._started_in: int | None = None
        self._generation = 0
        self._cached: tuple[int, float, HealthReport, bytes] | None = None
        """(generation, monotonic time until which no verdict can change, report, body)."""
        for item in probes:
            self.add(item)
        register_observable(
            "sendguard.health.probe.status", self,
            "Each probe's latest status: 0 pass, 1 warn, 2 fail", "1", _read_status,
            counter=False,
        )  # fmt: skip
        register_observable(
            "sendguard.health.probe.duration", self,
            "How long each probe's latest check took", "s", _read_duration, counter=False,
        )  # fmt: skip

    # --- configuration --------------------------------------------------------------------

    def add(
        self, probe: Probe, *, interval: float | None = None, max_age: float | None = None
    ) -> Probe:
        """Register `probe` (checked every `interval` seconds); returns it."""
        validate_probe_settings(type(probe).__name__, probe.name, probe.critical, probe.timeout)
        every = self.interval if interval is None else _check_interval("interval", interval)
        oldest = max_age if max_age is not None else self.max_age
        if oldest is None:
            oldest = 2 * every + probe.timeout
        oldest = _check_interval("max_age", oldest)
        if oldest < every:
            raise ConfigError(
                f"max_age={oldest!r} for probe {probe.name!r} is shorter than its interval "
                f"{every!r}: every result would go stale before the next one"
            )
        state = CheckState(
            probe.name, probe.critical, oldest, None, getattr(probe, "component_type", "component")
        )
        with self._lock:
            if probe.name in self._entries:
                raise ConfigError(f"a probe named {probe.name!r} is already registered")
            self._entries[probe.name] = _Entry(probe, state, every)
            self._schedule.add(probe.name, interval=every, timeout=probe.timeout)
            self._generation += 1
        self._wake.set()
        return probe

    @property
    def probes(self) -> tuple[Probe, ...]:
        """The registered probes, in the order they were added."""
        return tuple(entry.probe for entry in self._entries.values())

    def result(self, name: str) -> ProbeResult | None:
        """The latest result of the probe called `name` (None before its first check)."""
        return self._entries[name].state.result

    # --- answers from memory --------------------------------------------------------------

    def readiness(self) -> HealthReport:
        """The verdict over every probe, from cached results (no I/O)."""
        return self.readiness_document()[0]

    def readiness_document(self) -> tuple[HealthReport, bytes]:
        """`readiness()` and its health+json body, rebuilt only when a result arrived or
        a result went stale since the last call (otherwise two comparisons)."""
        now = self.clock.monotonic()
        cached = self._cached
        if cached is not None and cached[0] == self._generation and now <= cached[1]:
            return cached[2], cached[3]
        with self._lock:
            states = [entry.state for entry in self._entries.values()]
            generation = self._generation
        report = aggregate(states, now, description=self.description)
        body = report.to_json()
        fresh_until = min(
            (s.result.checked_at + s.max_age for s in states
             if s.result is not None and not is_stale(s, now)),
            default=math.inf,
        )  # fmt: skip
        self._cached = (generation, fresh_until, report, body)
        return report, body

    def liveness(self) -> HealthReport:
        """The liveness verdict: the process answers (no dependency is consulted)."""
        return liveness_report(self.description)

    # --- the background refresher ---------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether this process's background refresher is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def start(self) -> None:
        """Start the background refresher (once per process: a forked worker starts its own)."""
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's threads do not exist here
                self._pid, self._thread, self._futures = os.getpid(), None, {}
                self._schedule = self._rebuilt_schedule()
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._refresh_forever, name="sendguard-health-refresher", daemon=True
            )
            self._thread.start()
            self._started_in = _forks[0]

    def ensure_started(self) -> None:
        """`start` unless this process already started the refresher (one comparison:
        the endpoints call it on every request)."""
        if self._started_in != _forks[0]:
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the refresher (checks still running finish on their own threads)."""
        self._started_in = None
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def close(self) -> None:
        """Stop the refresher and close every probe that has a ``close()`` (its clients)."""
        self.stop()
        for entry in self._entries.values():
            closer = getattr(entry.probe, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> HealthRegistry:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _rebuilt_schedule(self) -> Schedule:
        schedule = Schedule()
        for name, entry in self._entries.items():
            schedule.add(name, interval=entry.interval, timeout=entry.probe.timeout)
        return schedule

    def _refresh_forever(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self._tick()
            with self._lock:
                wake_at = self._schedule.next_wakeup()
            delay = wake_at - self.clock.monotonic()
            if delay > 0:
                self._wake.wait(min(delay, 60.0))

    def _tick(self) -> None:
        now = self.clock.monotonic()
        with self._lock:
            due = self._schedule.due(now)
            late = self._schedule.expired(now)
        for name, running in due.hung:
            timeout = self._entries[name].probe.timeout
            self._give_up(name, f"still running: the check started {running:.1f}s ago has not "
                          f"returned (timeout {timeout:g}s)", now)  # fmt: skip
        for name in late:
            self._timed_out(name, now)
        for name in due.start:
            self._launch(name)

    # --- running checks --------------------------------------------------------------------

    def _launch(self, name: str) -> Future[ProbeResult]:
        probe = self._entries[name].probe
        future: Future[ProbeResult] = Future()
        future.set_running_or_notify_cancel()

        def work() -> None:
            try:
                future.set_result(run_probe(probe, self.clock))
            except BaseException as error:  # a SystemExit or KeyboardInterrupt in a probe
                future.set_exception(error)

        with self._lock:
            self._futures[name] = future
        future.add_done_callback(lambda done: self._finish(name, done))
        threading.Thread(target=work, name=f"sendguard-health:{name}", daemon=True).start()
        return future

    def _finish(self, name: str, future: Future[ProbeResult]) -> None:
        with self._lock:
            if self._futures.get(name) is future:
                del self._futures[name]
            counted = self._schedule.finished(name)
        if counted:
            error = future.exception()
            if error is None:
                self._record(name, future.result())
            else:
                self._give_up(name, describe_error(error), self.clock.monotonic())
        self._wake.set()

    def _timed_out(self, name: str, now: float) -> None:
        timeout = self._entries[name].probe.timeout
        self._give_up(name, f"timed out after {timeout:g}s", now, duration=timeout)

    def _give_up(self, name: str, message: str, now: float, duration: float = 0.0) -> None:
        result = ProbeResult.failing(message, details={"error": "timeout"})
        self._record(
            name, result.stamped(duration=duration, time=self.clock.wall(), checked_at=now)
        )

    def _record(self, name: str, result: ProbeResult) -> None:
        with self._lock:
            entry = self._entries[name]
            previous = entry.state.result
            entry.state = CheckState(
                entry.state.name, entry.state.critical, entry.state.max_age, result,
                entry.state.component_type,
            )  # fmt: skip
            self._generation += 1
        probe = entry.probe
        self.telemetry.emit(
            ProbeChecked(name, result.status.value, probe.critical, result.duration, result.message)
        )
        if previous is None or previous.status is not result.status:
            before = "unknown" if previous is None else previous.status.value
            self.telemetry.emit(
                ProbeStatusChanged(name, before, result.status.value, result.message)
            )

    def _settle_step(self) -> tuple[list[Future[ProbeResult]], float] | None:
        """Record checks past their deadline; return what is still running and how long
        to wait for it (None when everything has settled)."""
        now = self.clock.monotonic()
        with self._lock:
            late = self._schedule.expired(now)
            pending = [
                (future, deadline)
                for name, future in self._futures.items()
                if (deadline := self._schedule.deadline(name)) is not None
            ]
        for name in late:
            self._timed_out(name, now)
        if not pending:
            return None
        return [future for future, _ in pending], max(0.0, min(d for _, d in pending) - now)

    def _start_all(self) -> None:
        with self._lock:
            started = self._schedule.force(self.clock.monotonic())
        for name in started:
            self._launch(name)
        self._wake.set()

    def check_now(self) -> HealthReport:
        """Run every probe now (those already running are waited for), wait until each has
        answered or reached its timeout, and return the readiness report."""
        self._start_all()
        while (step := self._settle_step()) is not None:
            futures, wait = step
            concurrent.futures.wait(futures, wait, concurrent.futures.FIRST_COMPLETED)
        return self.readiness()

    async def acheck_now(self) -> HealthReport:
        """`check_now` for async code: waits without blocking the event loop."""
        self._start_all()
        while (step := self._settle_step()) is not None:
            futures, wait = step
            waiting = [asyncio.wrap_future(future) for future in futures]
            await asyncio.wait(waiting, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        return self.readiness()

    def __iter__(self) -> Iterator[Probe]:
        return iter(self.probes)

    def __repr__(self) -> str:
        return f"HealthRegistry({len(self._entries)} probes, interval={self.interval:g}s)"


def _read_status(registry: Any) -> Iterable[tuple[float, dict[str, str]]]:
    for entry in list(registry._entries.values()):
        result = entry.state.result
        if result is not None:
            critical = str(entry.state.critical).lower()
            yield float(result.status.severity), {"probe": entry.state.name, "critical": critical}


def _read_duration(registry: Any) -> Iterable[tuple[float, dict[str, str]]]:
    for entry in list(registry._entries.values()):
        result = entry.state.result
        if result is not None:
            yield result.duration, {"probe": entry.state.name}
