"""Inspect and purge an RQ backlog without deserialising a job (run against a scratch Redis).

    REDIS_URL=redis://localhost:6379/0 python docs/examples/jobs/backlog.py

The same as ``sendguard jobs inspect`` and ``sendguard jobs purge`` on the command line.
"""

import datetime as dt
import os

import redis
from rq import Queue

from sendguard.jobs import PurgeFilter, inspect_backlog, purge_backlog

client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
queue = Queue("five_minutes", connection=client)  # the old code: pickle, no guard
later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
for _ in range(30):  # the incident: one big email in every batch job
    queue.enqueue_at(later, "app.jobs.send_email_to", os.urandom(200_000), list(range(100)))
for n in range(50):
    queue.enqueue("app.jobs.track_open", n)

report = inspect_backlog(client, top=1)
for row in report.registries:
    print(f"{row.queue} {row.registry}: {row.count} jobs, {row.data_bytes // 1000:,} kB")
top = report.functions[0]
print(f"top function: {top.function}, {top.count} jobs, {top.data_bytes // 1000:,} kB")

wanted = PurgeFilter(function="send_email_to", min_bytes=100_000, registries=("scheduled",))
dry = purge_backlog(client, wanted)  # a dry run unless execute=True
print(
    f"dry run: {dry.matched} would go, {client.zcard('rq:scheduled:five_minutes')} still scheduled"
)
done = purge_backlog(client, wanted, execute=True)
print(f"purged: {done.deleted} jobs, {client.zcard('rq:scheduled:five_minutes')} still scheduled")

purge_backlog(client, PurgeFilter(everything=True, queues=("five_minutes",)), execute=True)
client.delete("rq:queues")
client.close()
