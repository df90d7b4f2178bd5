"""Heartbeats: a job says "I ran" to a store; a probe fails when it has been quiet too long.

Incident #2's monitoring ran on cron, so when cron died the monitoring died with it. A
heartbeat turns that around: the cron job (or worker) beats after each run
(``sendguard health beat NAME --store URL`` from a crontab line, or `beat` in code), and
the application's registry, which does not depend on cron, notices the silence.

`HeartbeatProbe` reads any `HeartbeatSource` (anything with ``last_beat(name)``), so the
jobs package's heartbeats can replace these stores without touching the probe.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard._core.keys import make_key
from sendguard.health._probe import BaseProbe
from sendguard.health._redis import redis_client
from sendguard.health._result import ProbeResult, Status

if TYPE_CHECKING:
    from sendguard._core.store import RedisClient

__all__ = ["HeartbeatProbe", "HeartbeatSource", "MemoryHeartbeats", "RedisHeartbeats"]


@runtime_checkable
class HeartbeatSource(Protocol):
    """Where a probe reads heartbeats from."""

    def last_beat(self, name: str) -> float | None:
        """Epoch seconds of `name`'s latest beat (None if it never beat)."""
        ...


class MemoryHeartbeats:
    """Heartbeats in this process (tests, or a job running in the same process)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._beats: dict[str, float] = {}
        self._lock = threading.Lock()

    def beat(self, name: str, at: float | None = None) -> None:
        """Record that `name` ran (now, or at epoch seconds `at`)."""
        with self._lock:
            self._beats[name] = self.clock.wall() if at is None else at

    def last_beat(self, name: str) -> float | None:
        """Epoch seconds of `name`'s latest beat."""
        return self._beats.get(name)


class RedisHeartbeats:
    """Heartbeats in Redis, shared by every process: ``sendguard:{heartbeat:<name>}:last``.

    Each beat is one SET with an expiry of `retention` seconds (a week by default).
    """

    def __init__(
        self,
        target: str | RedisClient,
        *,
        timeout: float = 0.5,
        retention: float = 7 * 86400,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not (isinstance(retention, int | float) and math.isfinite(retention) and retention >= 1):
            raise ConfigError(f"RedisHeartbeats.retention must be >= 1 s, got {retention!r}")
        self.client = redis_client(target, timeout)
        self.retention = int(retention)
        self.clock = clock

    @staticmethod
    def key(name: str) -> str:
        """The Redis key holding `name`'s latest beat."""
        return make_key("heartbeat", name, "last")

    def beat(self, name: str, at: float | None = None) -> None:
        """Record that `name` ran (raises redis-py's error if Redis does not answer)."""
        moment = self.clock.wall() if at is None else at
        self.client.get().set(self.key(name), repr(moment), ex=self.retention)

    def last_beat(self, name: str) -> float | None:
        """Epoch seconds of `name`'s latest beat."""
        raw = self.client.get().get(self.key(name))
        return None if raw is None else float(raw)

    def close(self) -> None:
        """Close the client made from a URL."""
        self.client.close()


class HeartbeatProbe(BaseProbe):
    """Fails when `job` has not beaten for `every` + `grace` seconds; warns after `every`.

    Args:
        source: where beats are read (`RedisHeartbeats`, `MemoryHeartbeats`, or the jobs
            package's heartbeats: anything with ``last_beat(name)``).
        job: the name the job beats under.
        every: how often the job runs, in seconds.
        grace: how late it may be before the check fails (default: a fifth of `every`,
            at least 60 s).
    """

    def __init__(
        self,
        source: HeartbeatSource,
        job: str,
        *,
        every: float,
        grace: float | None = None,
        name: str | None = None,
        critical: bool = False,
        timeout: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(name or f"heartbeat/{job}", critical=critical, timeout=timeout)
        if not callable(getattr(source, "last_beat", None)):
            raise ConfigError(f"HeartbeatProbe.source needs a last_beat(name), got {source!r}")
        for field, value in (("every", every), ("grace", grace)):
            if value is not None and not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                raise ConfigError(f"HeartbeatProbe.{field} must be positive seconds, got {value!r}")
        self.source = source
        self.job = job
        self.every = float(every)
        self.grace = float(grace) if grace is not None else max(60.0, every / 5)
        self.clock = clock

    def check(self) -> ProbeResult:
        """Compare the latest beat's age with the period and the grace."""
        last = self.source.last_beat(self.job)  # a store error fails the check (run_probe)
        if last is None:
            return ProbeResult.failing(
                f"no heartbeat from {self.job!r} yet (expected every {self.every:g}s)",
                measurement="age",
            )
        age = max(0.0, self.clock.wall() - last)
        if age <= self.every:
            status, message = Status.PASS, ""
        elif age <= self.every + self.grace:
            status, message = Status.WARN, f"{self.job!r} is late: last beat {age:.0f}s ago"
        else:
            status = Status.FAIL
            message = (
                f"{self.job!r} missed its beat: last one {age:.0f}s ago, expected every "
                f"{self.every:g}s (+{self.grace:g}s grace)"
            )
        return ProbeResult(
            status, message, observed_value=round(age, 1), observed_unit="s", measurement="age",
            details={"every_s": self.every, "grace_s": self.grace},
        )  # fmt: skip
