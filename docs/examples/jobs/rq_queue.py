"""RQ: a LeanQueue checks every write path (run against a scratch Redis).

    REDIS_URL=redis://localhost:6379/0 python docs/examples/jobs/rq_queue.py

Workers use the same classes and sendguard's JSON serializer:

    rq worker five_minutes --job-class sendguard.jobs.rq.LeanJob \\
        --queue-class sendguard.jobs.rq.LeanQueue --serializer sendguard.jobs.rq.JSONSerializer
"""

import datetime as dt
import os
from collections.abc import Callable

import redis
from rq import Queue

from sendguard.jobs import PayloadGuard, PayloadPolicy, PayloadRejected, PurgeFilter, purge_backlog
from sendguard.jobs.rq import JSONSerializer, LeanJob, LeanQueue


class AppJob(LeanJob):
    """The policy lives on the job class, so workers (--job-class) apply the same one."""

    payloads = PayloadGuard(PayloadPolicy(batch_max_bytes=1024 * 1024))


client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
queue = LeanQueue("five_minutes", connection=client, job_class=AppJob)
email = {"id": 4242, "body_html": "<p>" + "news " * 1_000_000 + "</p>"}
recipients = list(range(100))
later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)

writes: dict[str, Callable[[], object]] = {
    "enqueue": lambda: queue.enqueue("app.jobs.send_batch", email, recipients),
    "enqueue_at": lambda: queue.enqueue_at(later, "app.jobs.send_batch", email, recipients),
    "enqueue_in": lambda: queue.enqueue_in(
        dt.timedelta(minutes=5), "app.jobs.send_batch", email, recipients
    ),
    "enqueue_many": lambda: queue.enqueue_many(
        [Queue.prepare_data("app.jobs.send_batch", (email, recipients)) for _ in range(300)]
    ),
}
for path, write in writes.items():
    try:
        write()
    except PayloadRejected as refused:
        print(f"{path}: refused at {refused.path} ({refused.violation.value})")

jobs = queue.enqueue_many(
    [Queue.prepare_data("app.jobs.send_batch", (email["id"], recipients)) for _ in range(300)]
)
print(f"lean fan-out: {len(jobs)} jobs, {client.llen(queue.key)} queued")
print("sendguard's JSON serializer:", queue.serializer is JSONSerializer)

purge_backlog(client, PurgeFilter(everything=True, queues=("five_minutes",)), execute=True)
client.delete("rq:queues")
client.close()
