"""Celery: LeanTask checks every publish (eager here, so no broker is needed to try it)."""

from celery import Celery  # type: ignore[import-untyped]

from sendguard.jobs import PayloadRejected
from sendguard.jobs.celery import LeanTask

app = Celery("app", broker="redis://localhost:6379/0", task_cls=LeanTask)
app.conf.task_always_eager = True  # run tasks in-process: only for this example


@app.task(name="app.jobs.send_batch")  # type: ignore[untyped-decorator]
def send_batch(email_id: int, recipient_ids: list[int]) -> int:
    return len(recipient_ids)


email = {"id": 4242, "body_html": "<p>" + "news " * 1_000_000 + "</p>"}
print("lean:", send_batch.delay(email["id"], list(range(100))).get())
try:
    send_batch.apply_async((email, [1, 2]), queue="five_minutes")
except PayloadRejected as refused:
    print(
        f"refused {refused.function} on {refused.queue!r}: {refused.path}, {refused.size:,}+ bytes"
    )
