"""Lean batch jobs: an email id and recipient ids, on RQ (with Redis) or in process.

    queue = open_queue(config, handler=sender.send_batch)
    queue.enqueue_batches(email.id, [[1, 2, 3], [4, 5, 6]])    # checked, then written
    queue.enqueue(email.id, [7], retry_round=1, delay=2.0)       # deferred messages, later
    queue.drain(timeout=60)                                      # tests and the demo

Every job is ``sendguard.pipeline.worker.send_batch(email_id, recipient_ids)`` (plus
``retry_round=n`` for re-enqueued deferred messages), and every job passes the same
`PAYLOADS` guard at enqueue: JSON-native values only, 16 KiB a job. With Redis, jobs go
to an RQ `LeanQueue` (sendguard's JSON serializer: RQ's JSON serializer plus the guard's
allow-list) whose workers run::

    rq worker sendguard-pipeline --job-class sendguard.pipeline.jobqueue.PipelineJob \\
        --queue-class sendguard.jobs.rq.LeanQueue --serializer sendguard.jobs.rq.JSONSerializer

with the pipeline's ``SENDGUARD_*`` environment (`PipelineConfig.to_env`). Without Redis,
`ThreadQueue` keeps jobs in memory and runs them on worker threads.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sendguard import ConfigError
from sendguard.jobs import KIB, MIB, PayloadGuard, PayloadPolicy
from sendguard.jobs.rq import JSONSerializer, LeanJob

if TYPE_CHECKING:
    import redis
    from rq import Queue

    from sendguard.pipeline.config import PipelineConfig

__all__ = [
    "PAYLOADS",
    "SEND_BATCH",
    "JobQueue",
    "PipelineJob",
    "RqQueue",
    "ThreadQueue",
    "open_queue",
]

SEND_BATCH = "sendguard.pipeline.worker.send_batch"
"""The one job function: ``send_batch(email_id, recipient_ids, retry_round=0)``."""

PAYLOADS = PayloadGuard(
    PayloadPolicy(max_bytes=16 * KIB, warn_bytes=8 * KIB, batch_max_bytes=4 * MIB),
)
"""The guard every pipeline job passes at enqueue: 1,000 ids are about 7 KiB."""

BatchHandler = Callable[[int, list[int], int], object]
"""What runs a job in process: ``handler(email_id, recipient_ids, retry_round)``."""

_log = logging.getLogger("sendguard.pipeline")


class PipelineJob(LeanJob):
    """The pipeline's RQ job class: its payloads are checked by `PAYLOADS`."""

    payloads = PAYLOADS


class JobQueue(Protocol):
    """What the API and the worker need from a queue."""

    name: str

    def enqueue(
        self,
        email_id: int,
        recipient_ids: Sequence[int],
        *,
        retry_round: int = 0,
        delay: float = 0.0,
    ) -> None:
        """One job, run after `delay` seconds."""
        ...

    def enqueue_batches(self, email_id: int, batches: Sequence[Sequence[int]]) -> int:
        """One job per batch, all checked against the batch budget first; how many."""
        ...

    def backlog(self) -> int:
        """Jobs waiting to run (not counting delayed or running ones)."""
        ...

    def drain(self, timeout: float = 60.0) -> None:
        """Run (or wait for) jobs until none is waiting, delayed or running."""
        ...

    def close(self) -> None:
        """Stop workers and release connections."""
        ...


def _payload(
    email_id: int, recipient_ids: Sequence[int], retry_round: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    kwargs: dict[str, Any] = {"retry_round": retry_round} if retry_round else {}
    return (email_id, list(recipient_ids)), kwargs


class ThreadQueue:
    """Jobs in memory, run by `workers` threads (0: `drain` runs them in the caller)."""

    def __init__(
        self,
        name: str,
        handler: BatchHandler,
        *,
        workers: int = 4,
        guard: PayloadGuard = PAYLOADS,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"ThreadQueue.workers must be a whole number >= 0, got {workers!r}")
        self.name = name
        self.handler = handler
        self.guard = guard
        self.failures: list[tuple[int, list[int], str]] = []
        """Jobs that raised: (email id, recipient ids, error), for operators and tests."""
        self._heap: list[tuple[float, int, int, list[int], int]] = []
        self._seq = itertools.count()
        self._running = 0
        self._closed = False
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-worker-{n}", daemon=True)
            for n in range(workers)
        ]

    def start(self) -> ThreadQueue:
        """Start the worker threads."""
        for thread in self._threads:
            if not thread.is_alive():
                thread.start()
        return self

    def enqueue(
        self,
        email_id: int,
        recipient_ids: Sequence[int],
        *,
        retry_round: int = 0,
        delay: float = 0.0,
    ) -> None:
        args, kwargs = _payload(email_id, recipient_ids, retry_round)
        self.guard.check(SEND_BATCH, args, kwargs, queue=self.name)
        self._push([(email_id, list(recipient_ids), retry_round, delay)])

    def enqueue_batches(self, email_id: int, batches: Sequence[Sequence[int]]) -> int:
        with self.guard.batch():
            for batch in batches:
                self.guard.check(SEND_BATCH, *_payload(email_id, batch, 0), queue=self.name)
        self._push([(email_id, list(batch), 0, 0.0) for batch in batches])
        return len(batches)

    def _push(self, jobs: list[tuple[int, list[int], int, float]]) -> None:
        now = time.monotonic()
        with self._changed:
            if self._closed:
                raise RuntimeError(f"queue {self.name!r} is closed")
            for email_id, ids, retry_round, delay in jobs:
                job = (now + delay, next(self._seq), email_id, ids, retry_round)
                heapq.heappush(self._heap, job)
            self._changed.notify_all()

    def backlog(self) -> int:
        now = time.monotonic()
        with self._changed:
            return sum(1 for job in self._heap if job[0] <= now)

    def _take(self, deadline: float | None) -> tuple[int, list[int], int] | None:
        """The next due job, counted as running; waits for one (until `deadline`, if
        given; an inline drain also stops when nothing is left)."""
        with self._changed:
            while not self._closed:
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, email_id, ids, retry_round = heapq.heappop(self._heap)
                    self._running += 1
                    return email_id, ids, retry_round
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    if not self._heap or now >= deadline:
                        return None
                    wait = min(wait or 0.0, deadline - now)
                self._changed.wait(wait)
            return None

    def _run(self, job: tuple[int, list[int], int]) -> None:
        email_id, ids, retry_round = job
        try:
            self.handler(email_id, ids, retry_round)
        except Exception as error:
            _log.exception("job send_batch(%s, %d ids) failed", email_id, len(ids))
            self.failures.append((email_id, ids, f"{type(error).__name__}: {error}"))
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def _work(self) -> None:
        while (job := self._take(None)) is not None:
            self._run(job)

    def drain(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        if not self._threads:
            while (job := self._take(deadline)) is not None:
                self._run(job)
        with self._changed:
            while self._heap or self._running:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"queue {self.name!r} not drained after {timeout:g}s: "
                        f"{len(self._heap)} waiting, {self._running} running"
                    )
                self._changed.wait(left)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)


class RqQueue:
    """An RQ `LeanQueue` of `PipelineJob`s with sendguard's JSON serializer."""

    def __init__(
        self,
        redis_url: str,
        name: str,
        *,
        job_timeout: int = 600,
        result_ttl: int = 600,
        drain_workers: int = 1,
    ) -> None:
        import redis

        from sendguard.jobs.rq import LeanQueue

        self.name = name
        self.connection: redis.Redis = redis.Redis.from_url(redis_url, socket_timeout=5.0)
        self.queue: Queue = LeanQueue(
            name, connection=self.connection, job_class=PipelineJob, serializer=JSONSerializer
        )
        self.job_timeout = job_timeout
        self.result_ttl = result_ttl
        self.drain_workers = max(1, drain_workers)

    def enqueue(
        self,
        email_id: int,
        recipient_ids: Sequence[int],
        *,
        retry_round: int = 0,
        delay: float = 0.0,
    ) -> None:
        args, kwargs = _payload(email_id, recipient_ids, retry_round)
        if delay > 0:
            self.queue.enqueue_in(
                dt.timedelta(seconds=delay),
                SEND_BATCH,
                *args,
                job_timeout=self.job_timeout,
                result_ttl=self.result_ttl,
                **kwargs,
            )
        else:
            self.queue.enqueue_call(
                SEND_BATCH,
                args=args,
                kwargs=kwargs,
                timeout=self.job_timeout,
                result_ttl=self.result_ttl,
            )

    def enqueue_batches(self, email_id: int, batches: Sequence[Sequence[int]]) -> int:
        from rq import Queue

        datas = [
            Queue.prepare_data(
                SEND_BATCH,
                (email_id, list(batch)),
                timeout=self.job_timeout,
                result_ttl=self.result_ttl,
            )
            for batch in batches
        ]
        return len(self.queue.enqueue_many(datas)) if datas else 0

    def backlog(self) -> int:
        return int(self.queue.count)

    def failed(self) -> int:
        """Jobs in RQ's failed registry for this queue."""
        return int(self.queue.failed_job_registry.count)

    def drain(self, timeout: float = 60.0) -> None:
        """Burst `rq.SimpleWorker`s in this process (`drain_workers` threads; the first
        also moves due scheduled jobs) until nothing is queued or scheduled."""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue {self.name!r} not drained after {timeout:g}s")
            threads = [
                threading.Thread(target=self._burst, args=(n == 0,), name=f"{self.name}-drain-{n}")
                for n in range(self.drain_workers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(thread.is_alive() for thread in threads):
                raise TimeoutError(f"queue {self.name!r} not drained after {timeout:g}s")
            if self.queue.count:
                continue
            key = self.queue.scheduled_job_registry.key
            due = self.connection.zrange(key, 0, 0, withscores=True)
            if not due:
                return
            wait = float(due[0][1]) - time.time()
            if time.monotonic() + max(wait, 0) > deadline:
                raise TimeoutError(f"queue {self.name!r} not drained after {timeout:g}s")
            if wait > 0:
                time.sleep(min(wait, 0.5) + 0.01)

    def _burst(self, scheduler: bool) -> None:
        from rq import SimpleWorker
        from rq.timeouts import TimerDeathPenalty

        from sendguard.jobs.rq import LeanQueue

        class BurstWorker(SimpleWorker):
            death_penalty_class = TimerDeathPenalty  # works off the main thread

            def _install_signal_handlers(self) -> None:
                """Leave the host process's signal handlers alone."""

        BurstWorker(
            [self.queue],
            connection=self.connection,
            job_class=PipelineJob,
            queue_class=LeanQueue,
            serializer=JSONSerializer,
        ).work(burst=True, with_scheduler=scheduler, logging_level="WARNING")

    def close(self) -> None:
        self.connection.close()


def open_queue(config: PipelineConfig, handler: BatchHandler) -> JobQueue:
    """`RqQueue` when `config.redis_url` is set, else a started `ThreadQueue`."""
    if config.redis_url:
        return RqQueue(
            config.redis_url, config.queue_name, drain_workers=max(1, config.worker_threads)
        )
    return ThreadQueue(config.queue_name, handler, workers=config.worker_threads).start()
