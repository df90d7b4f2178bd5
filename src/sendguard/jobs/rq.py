"""RQ adapter: a `Job` and a `Queue` class that check every payload before it is written.

    from sendguard.jobs.rq import JSONSerializer, LeanQueue

    queue = LeanQueue("five_minutes", connection=redis_conn)   # JSON serializer by default
    queue.enqueue(send_email, email.id, recipient_ids)          # checked, then written
    queue.enqueue(send_email, email, recipients)                # PayloadRejected: pass its id

    rq worker five_minutes --job-class sendguard.jobs.rq.LeanJob \\
        --queue-class sendguard.jobs.rq.LeanQueue --serializer sendguard.jobs.rq.JSONSerializer

Where the checks happen, so that no write path is missed:

- `LeanQueue.create_job` checks a new job before RQ builds it (before RQ even computes
  its description), for ``enqueue``, ``enqueue_call``, ``enqueue_at``, ``enqueue_in``
  and ``enqueue_many``; ``enqueue_many`` checks the whole batch first, against the batch
  budget, so a rejected batch writes nothing.
- `LeanJob` checks a payload whenever it is serialised from Python values, whichever
  queue writes it (a job built with ``LeanJob.create`` and ``enqueue_job``, a job whose
  ``args`` were replaced), and, when a job already in Redis is put back on a queue or
  schedule (``requeue``, RQ's ``requeue`` command), checks its stored size without
  deserialising it; a refused requeue leaves the job in its registry. A retry by the
  worker is not re-checked: the same bytes are already in Redis, and refusing would
  break the worker's failure handling.

RQ's scheduler moves due jobs with its own `Job` class; they were checked when scheduled.
The policy comes from the job class: subclass `LeanJob` with ``payloads =
PayloadGuard(...)`` and pass it as ``job_class`` (and ``--job-class`` to workers).
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from rq.defaults import DEFAULT_FAILURE_TTL
from rq.job import UNEVALUATED, Job, JobStatus
from rq.queue import EnqueueData, Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.utils import current_timestamp, resolve_function_reference

from sendguard._core.errors import ConfigError
from sendguard.jobs._errors import PayloadRejected, Violation
from sendguard.jobs._measure import describe_size, encode_extra, type_name
from sendguard.jobs._payloads import PayloadGuard, default_guard
from sendguard.jobs._rq_layout import function_of

__all__ = ["JSONSerializer", "LeanJob", "LeanQueue"]

_QUEUEING = (JobStatus.QUEUED, JobStatus.SCHEDULED)
_checked_ahead: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sendguard_rq_checked_ahead", default=False
)


class JSONSerializer:
    """RQ's JSON serializer, plus the allow-list: UUID, date, datetime, Decimal as strings,
    an Enum as its value. Workers receive those as strings (or the Enum's value)."""

    @staticmethod
    def dumps(obj: Any, /) -> bytes:
        """``json.dumps`` with the allow-list encoder, as UTF-8 bytes."""
        return json.dumps(obj, default=encode_extra).encode("utf-8")

    @staticmethod
    def loads(data: bytes, /) -> Any:
        """``json.loads``."""
        return json.loads(data)


def _function_name(func: Any) -> tuple[object, str]:
    instance, name = resolve_function_reference(func)
    if instance is not None and name == "__call__":
        name = f"{type_name(instance)}.__call__"
    return instance, name


def _bound_method(function: str, queue: str | None, instance: object) -> PayloadRejected:
    advice = "enqueue a module-level function and pass the object's id"
    on = f"{function} on queue {queue!r}" if queue else function
    return PayloadRejected(
        f"{on}: a bound method carries its instance ({type_name(instance)}) into the job: {advice}",
        function=function,
        queue=queue,
        path="instance",
        violation=Violation.TYPE,
        size=0,
        budget=None,
        advice=advice,
    )


class LeanJob(Job):
    """An RQ job whose payload is checked before it is serialised (see the module doc)."""

    payloads: ClassVar[PayloadGuard | None] = None
    """The guard for jobs of this class; None: `sendguard.jobs.default_guard()`."""

    def __init__(
        self, id: str | None = None, connection: Any = None, serializer: Any = None
    ) -> None:
        super().__init__(id, connection=connection, serializer=serializer)
        self._sg_checked: tuple[object, object, object] | None = None
        self._sg_stored = False
        self._sg_retrying = False

    @classmethod
    def guard(cls) -> PayloadGuard:
        """The guard that checks this class's jobs."""
        return cls.payloads or default_guard()

    def mark_checked(self) -> None:
        """Record that the current function and arguments passed the check."""
        self._sg_checked = (self._func_name, self._args, self._kwargs)

    def _is_marked(self) -> bool:
        seen = self._sg_checked
        return (
            seen is not None
            and seen[0] is self._func_name
            and seen[1] is self._args
            and seen[2] is self._kwargs
        )

    def _check_values(self) -> None:
        """Check the Python payload that is about to be serialised."""
        queue = self.origin or None
        if self._instance is not UNEVALUATED and self._instance is not None:
            self.guard().refuse(_bound_method(str(self._func_name), queue, self._instance))
        args = () if self._args is UNEVALUATED else self._args
        kwargs = {} if self._kwargs is UNEVALUATED else self._kwargs
        self.guard().check(str(self._func_name), args, kwargs, queue=queue)  # type: ignore[arg-type]
        self.mark_checked()

    def _check_stored(self) -> None:
        """A job already serialised is (re)queued: check its size, without deserialising."""
        raw: bytes = Job.data.fget(self)  # type: ignore[attr-defined]
        name, queue = function_of(self.description), self.origin or None
        guard = self.guard()
        budget = guard.policy_for(name, queue).max_bytes
        if len(raw) <= budget:
            return
        advice = "purge it (sendguard jobs purge) and enqueue a lean version"
        on = f"{name} on queue {queue!r}" if queue else name
        error = PayloadRejected(
            f"{on}: job {self.id} holds {describe_size(len(raw))} of data, over the "
            f"{describe_size(budget)} budget; it was not requeued: {advice}",
            function=name,
            queue=queue,
            path="data",
            violation=Violation.SIZE,
            size=len(raw),
            budget=budget,
            advice=advice,
        )
        try:
            guard.refuse(error)
        except PayloadRejected:
            self._put_back()
            raise

    def _put_back(self) -> None:
        """RQ's requeue takes the id out of its registry before it saves the job: a refused
        requeue puts it back where Redis says the job still is."""
        stored = self._fetch_status()
        registry = {
            JobStatus.FAILED: FailedJobRegistry,
            JobStatus.STOPPED: FailedJobRegistry,
            JobStatus.CANCELED: CanceledJobRegistry,
        }.get(stored)
        if registry is not None:
            key = registry(self.origin, connection=self.connection).key
            ttl = self.failure_ttl or DEFAULT_FAILURE_TTL
            self.connection.zadd(key, {self.id: current_timestamp() + ttl})
        self._status = stored

    def _get_data(self) -> bytes:
        if self._data is UNEVALUATED and not self._is_marked():
            self._check_values()
        raw: bytes = Job.data.fget(self)  # type: ignore[attr-defined]
        return raw

    def _set_data(self, value: bytes) -> None:
        Job.data.fset(self, value)  # type: ignore[attr-defined]
        self._sg_stored = True
        self._sg_checked = None

    data = property(_get_data, _set_data, doc="The serialised payload (checked when built).")

    def save(
        self, pipeline: Any = None, include_meta: bool = True, include_result: bool = True
    ) -> None:
        """Save; a stored payload going back on a queue or schedule is size-checked first."""
        if (
            self._sg_stored
            and not self._sg_retrying
            and self._status in _QUEUEING
            and self._data is not UNEVALUATED
        ):
            self._check_stored()
        super().save(pipeline=pipeline, include_meta=include_meta, include_result=include_result)

    def retry(self, queue: Queue, pipeline: Any) -> None:
        """RQ's retry (the worker re-enqueues bytes already in Redis: not re-checked)."""
        self._sg_retrying = True
        try:
            super().retry(queue, pipeline)
        finally:
            self._sg_retrying = False


class LeanQueue(Queue):
    """An RQ queue that checks every job before it is created (see the module doc).

    It uses `LeanJob` (or the `job_class` given, which must subclass it) and sendguard's
    `JSONSerializer` unless another serializer is given. RQ's own JSON serializer works
    too, but cannot write the allow-listed types (UUID, datetime...): with it, such a
    value fails at enqueue with json's TypeError (nothing is written), or set
    ``extra_types=()`` in the policy to have them refused with advice.
    """

    job_class: type[LeanJob] = LeanJob

    def __init__(
        self,
        name: str = "default",
        connection: Any = None,
        *,
        job_class: type[Job] | str | None = None,
        serializer: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(
            name,
            connection=connection,
            job_class=job_class,
            serializer=serializer if serializer is not None else JSONSerializer,
            **options,
        )
        if not (isinstance(self.job_class, type) and issubclass(self.job_class, LeanJob)):
            raise ConfigError(
                f"LeanQueue.job_class must subclass sendguard.jobs.rq.LeanJob, "
                f"got {self.job_class!r}"
            )

    def _check(self, func: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        instance, name = _function_name(func)
        guard = self.job_class.guard()
        if instance is not None:
            guard.refuse(_bound_method(name, self.name, instance))
        guard.check(name, args, kwargs, queue=self.name)

    def create_job(  # type: ignore[override]
        self, func: Any, args: Any = None, kwargs: Any = None, **options: Any
    ) -> LeanJob:
        """RQ's `create_job`, after checking the payload (before RQ serialises anything)."""
        args = () if args is None else args
        kwargs = {} if kwargs is None else kwargs
        if not _checked_ahead.get():
            self._check(func, args, kwargs)
        job = super().create_job(func, args=args, kwargs=kwargs, **options)
        assert isinstance(job, LeanJob)
        job.mark_checked()
        return job

    def enqueue_many(
        self, job_datas: Iterable[EnqueueData], pipeline: Any = None, group_id: str | None = None
    ) -> list[Job]:
        """RQ's `enqueue_many`, after checking every job, and all of them against the batch
        budget: a batch with one bad job writes nothing."""
        datas = list(job_datas)
        guard = self.job_class.guard()
        with guard.batch():
            for data in datas:
                self._check(data.func, data.args or (), data.kwargs or {})
        token = _checked_ahead.set(True)
        try:
            return super().enqueue_many(datas, pipeline=pipeline, group_id=group_id)
        finally:
            _checked_ahead.reset(token)
