"""Queue backlogs for RQ and Celery, read straight from Redis without deserialising a job.

- RQ keeps a queue as the list ``rq:queue:<name>`` of job ids, oldest first, and each job
  as the hash ``rq:job:<id>`` whose ``enqueued_at`` field is an ISO timestamp: depth is
  one LLEN, the oldest age one LINDEX and one HGET.
- Celery's Redis broker keeps a queue as a list named after it (new messages pushed on
  the left, taken from the right), plus one list per priority step (``<name>\\x06\\x163``
  and so on). The message envelope carries no enqueue time, so the oldest age is
  measured by watching: the probe remembers a digest of the message at the head of
  each list and when it first saw it there; while the same message stays at the head,
  its age is at least the time since. The age is a lower bound (``age_is_lower_bound``
  in the details), exact to one check interval.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard.health._probe import BaseProbe
from sendguard.health._redis import redis_client, redis_failure
from sendguard.health._result import Detail, ProbeResult, Status, Thresholds

if TYPE_CHECKING:
    from sendguard._core.store import RedisClient

__all__ = ["BacklogProbe", "CeleryBacklogProbe", "RqBacklogProbe", "parse_enqueued_at"]

CELERY_PRIORITY_SEPARATOR = "\x06\x16"
"""kombu's separator between a queue name and its priority step."""


def parse_enqueued_at(value: bytes | str | None) -> float | None:
    """RQ's ``enqueued_at`` (``2026-05-08T20:30:00.123456Z``, UTC) as epoch seconds."""
    if value is None:
        return None
    text = (value.decode() if isinstance(value, bytes) else value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:  # RQ writes UTC; an offset-less stamp is UTC too
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_DEPTH = Thresholds.above(warn=1000)
_AGE = Thresholds.above(warn=300, fail=1800)


class BacklogProbe(BaseProbe):
    """A queue's depth and the age of its oldest job; subclasses read a broker's layout."""

    component_type = "component"

    def __init__(
        self,
        target: str | RedisClient,
        queue: str,
        *,
        name: str,
        critical: bool = False,
        timeout: float = 1.0,
        depth: Thresholds = _DEPTH,
        age: Thresholds = _AGE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(name, critical=critical, timeout=timeout)
        if not isinstance(queue, str) or not queue:
            raise ConfigError(f"{type(self).__name__}.queue must be a queue name, got {queue!r}")
        self.queue = queue
        self.client = redis_client(target, timeout)
        self.depth = depth
        self.age = age
        self.clock = clock

    def measure(self, client: RedisClient) -> tuple[int, float | None, bool]:
        """(depth, oldest age in seconds or None, whether the age is a lower bound)."""
        raise NotImplementedError

    def check(self) -> ProbeResult:
        """Measure and judge the backlog."""
        import redis

        try:
            depth, age, lower_bound = self.measure(self.client.get())
        except redis.RedisError as error:
            return redis_failure(error, measurement="backlog")
        statuses = [self.depth.judge(depth)]
        if age is not None:
            statuses.append(self.age.judge(age))
        status = Status.worst(statuses)
        message = ""
        if status is not Status.PASS:
            at_least = "at least " if lower_bound else ""
            oldest = "" if age is None else f", the oldest waiting {at_least}{age:.0f}s"
            message = f"{depth} jobs waiting in {self.queue!r}{oldest}"
        details: dict[str, Detail] = {
            "queue": self.queue,
            "oldest_age_s": None if age is None else round(age, 1),
            "age_is_lower_bound": lower_bound,
        }
        return ProbeResult(
            status, message, observed_value=depth, observed_unit="{job}",
            measurement="backlog", details=details,
        )  # fmt: skip

    def close(self) -> None:
        """Close the client this probe made from a URL."""
        self.client.close()


class RqBacklogProbe(BacklogProbe):
    """An RQ queue: ``LLEN rq:queue:<name>``, and the oldest job's ``enqueued_at``."""

    def __init__(
        self, target: str | RedisClient, queue: str = "default", *, name: str | None = None,
        prefix: str = "rq:", **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(target, queue, name=name or f"rq/{queue}", **options)
        self.prefix = prefix

    def measure(self, client: RedisClient) -> tuple[int, float | None, bool]:
        """One pipeline (LLEN, LINDEX 0), then one HGET of the oldest job's hash."""
        key = f"{self.prefix}queue:{self.queue}"
        pipe = client.pipeline(transaction=False)
        pipe.llen(key)
        pipe.lindex(key, 0)
        depth, oldest = pipe.execute()
        if not depth or oldest is None:
            return int(depth or 0), None, False
        job_id = oldest.decode() if isinstance(oldest, bytes) else str(oldest)
        enqueued = parse_enqueued_at(client.hget(f"{self.prefix}job:{job_id}", "enqueued_at"))
        age = None if enqueued is None else max(0.0, self.clock.wall() - enqueued)
        return int(depth), age, False


class CeleryBacklogProbe(BacklogProbe):
    """A Celery queue on the Redis broker: the lists of every priority step."""

    def __init__(
        self, target: str | RedisClient, queue: str = "celery", *, name: str | None = None,
        priority_steps: tuple[int, ...] = (0, 3, 6, 9), **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(target, queue, name=name or f"celery/{queue}", **options)
        self.keys = [queue] + [
            f"{queue}{CELERY_PRIORITY_SEPARATOR}{step}" for step in priority_steps if step
        ]
        self._seen: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def measure(self, client: RedisClient) -> tuple[int, float | None, bool]:
        """One pipeline: LLEN and LINDEX -1 (the next message out) of every list."""
        pipe = client.pipeline(transaction=False)
        for key in self.keys:
            pipe.llen(key)
            pipe.lindex(key, -1)
        replies = pipe.execute()
        now = self.clock.monotonic()
        depth, oldest = 0, None
        with self._lock:
            for key, length, head in zip(self.keys, replies[::2], replies[1::2], strict=True):
                depth += int(length or 0)
                if head is None:
                    self._seen.pop(key, None)
                    continue
                raw = head if isinstance(head, bytes) else str(head).encode()
                digest = hashlib.blake2b(raw, digest_size=16).digest()
                seen = self._seen.get(key)
                if seen is None or seen[0] != digest:
                    seen = self._seen[key] = (digest, now)
                age = now - seen[1]
                oldest = age if oldest is None else max(oldest, age)
        return depth, oldest, True
