"""Celery adapter: a `Task` base class whose `apply_async` checks the payload first.

    from celery import Celery
    from sendguard.jobs.celery import LeanTask

    app = Celery("app", broker="redis://localhost:6379/0", task_cls=LeanTask)

    @app.task
    def send_email(email_id: int, recipient_ids: list[int]) -> None: ...

    send_email.delay(email.id, ids)      # checked, then published
    send_email.delay(email, recipients)  # PayloadRejected: args[0] is app.models.Email: ...

``delay``, ``apply_async``, signatures, groups, chords and ``Task.retry`` all publish
through `Task.apply_async`, so all are checked (Celery's ``before_task_publish`` signal
cannot refuse a message, so the check lives here). ``app.send_task(name, ...)`` does not
go through a task class: wrap it with `sendguard.jobs.lean_payloads` if you use it.
The queue is the ``queue`` option, else the task's ``queue``, else the app's default
queue. The guard is the class attribute `payloads` (subclass to set your own).
"""

from __future__ import annotations

from typing import Any, ClassVar

from celery import Task  # type: ignore[import-untyped]

from sendguard.jobs._payloads import PayloadGuard, default_guard

__all__ = ["LeanTask"]


class LeanTask(Task):  # type: ignore[misc]
    """A Celery task whose every publish is checked by a `PayloadGuard`."""

    payloads: ClassVar[PayloadGuard | None] = None
    """The guard for tasks of this class; None: `sendguard.jobs.default_guard()`."""

    def _queue_name(self, options: dict[str, Any]) -> str:
        queue = options.get("queue") or getattr(self, "queue", None)
        if queue is None:
            return str(self.app.conf.task_default_queue)
        return str(getattr(queue, "name", queue))

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: Any = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: Any = None,
        **options: Any,
    ) -> Any:
        """Check ``(args, kwargs)`` against the guard, then publish as Celery does."""
        guard = self.payloads or default_guard()
        guard.check(self.name, args or (), kwargs or {}, queue=self._queue_name(options))
        return super().apply_async(
            args,
            kwargs,
            task_id=task_id,
            producer=producer,
            link=link,
            link_error=link_error,
            shadow=shadow,
            **options,
        )
