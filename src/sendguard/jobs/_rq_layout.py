"""How RQ lays a backlog out in Redis, read without deserialising a single job.

RQ keeps each queue as a list of job ids (``rq:queue:<name>``), each registry as a
sorted set of ids (``rq:scheduled:<name>``, ``rq:wip:<name>`` for started jobs, and
``failed``, ``finished``, ``deferred``, ``canceled``), the set of queues in
``rq:queues``, and each job as a hash ``rq:job:<id>`` whose ``data`` field is the
zlib-compressed serialized call. Everything here reads a job's size (``HSTRLEN data``,
``MEMORY USAGE``), its function (its ``description``, RQ's call string), and its
timestamps: never ``data`` itself. Reads go in pipelined batches, so memory stays bounded
by the batch size whatever the backlog holds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis

__all__ = [
    "ORPHANED",
    "REGISTRIES",
    "JobInfo",
    "RqLayout",
    "describe_jobs",
    "function_of",
    "list_batches",
    "orphan_batches",
    "parse_stamp",
    "queue_names",
    "zset_batches",
]

REGISTRIES = ("queued", "scheduled", "started", "deferred", "failed", "finished", "canceled")
"""The places a job id can be, in the order they are reported."""
ORPHANED = "orphaned"
"""A pseudo-registry: job hashes that no registry lists (found by SCAN over job keys)."""
_KEY_OF = {"queued": "queue", "started": "wip"}
_STATUS_REGISTRY = {
    "queued": "queued",
    "scheduled": "scheduled",
    "started": "started",
    "deferred": "deferred",
    "failed": "failed",
    "stopped": "failed",
    "finished": "finished",
    "canceled": "canceled",
}


@dataclass(frozen=True, slots=True)
class RqLayout:
    """RQ's key names under `prefix` (``RQ_KEY_PREFIX``, ``rq`` by default)."""

    prefix: str = "rq"

    @property
    def queues_key(self) -> str:
        """The set of every queue's key."""
        return f"{self.prefix}:queues"

    def registry_key(self, queue: str, registry: str) -> str:
        """The list (queued) or sorted set (the others) of `registry` in `queue`."""
        return f"{self.prefix}:{_KEY_OF.get(registry, registry)}:{queue}"

    def job_key(self, job_id: str) -> str:
        """The job's hash."""
        return f"{self.prefix}:job:{job_id}"

    def extra_keys(self, job_id: str) -> list[str]:
        """Keys that belong to a job besides its hash (deleted along with it)."""
        return [
            f"{self.prefix}:job:{job_id}:dependents",
            f"{self.prefix}:results:{job_id}",
            f"{self.prefix}:executions:{job_id}",
        ]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """One job as the inspector sees it (nothing deserialised)."""

    id: str
    queue: str
    registry: str
    function: str
    """The call's function, from RQ's description (``app.jobs.send_email``)."""
    data_bytes: int
    """``HSTRLEN data``: the stored (compressed) payload."""
    memory_bytes: int | None
    """``MEMORY USAGE`` of the job's hash (None when not asked for)."""
    age: float | None
    """Seconds since it was enqueued (else created); None without a timestamp."""
    status: str
    member: str
    """The registry entry as stored (started jobs: ``<id>:<execution>``)."""


def queue_names(client: redis.Redis, layout: RqLayout) -> list[str]:
    """Every queue RQ knows of, sorted."""
    marker = f"{layout.prefix}:queue:"
    return sorted(_text(key).removeprefix(marker) for key in client.smembers(layout.queues_key))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def function_of(description: str | None) -> str:
    """The function in RQ's call-string description (``app.jobs.send(1, 2)`` -> name)."""
    if not description:
        return "(unknown)"
    return description.split("(", 1)[0].strip() or "(unknown)"


def parse_stamp(value: str | None) -> float | None:
    """RQ's UTC timestamps (``2026-01-30T09:22:00.123456Z``) as epoch seconds."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def list_batches(
    client: redis.Redis, key: str, batch: int
) -> Generator[list[str], int | None, None]:
    """Ids of a list, `batch` at a time; ``send(n)`` after removing n of the last batch."""
    start = 0
    while True:
        chunk = [_text(item) for item in client.lrange(key, start, start + batch - 1)]
        if not chunk:
            return
        removed = yield chunk
        start += len(chunk) - (removed or 0)


def zset_batches(client: redis.Redis, key: str, batch: int) -> Iterator[list[str]]:
    """Members of a sorted set by ZSCAN, about `batch` at a time (safe while it changes)."""
    cursor = 0
    while True:
        cursor, pairs = client.zscan(key, cursor, count=batch)
        if pairs:
            yield [_text(member) for member, _ in pairs]
        if cursor == 0:
            return


def describe_jobs(
    client: redis.Redis,
    layout: RqLayout,
    members: Sequence[str],
    queue: str,
    registry: str,
    now: float,
    *,
    memory: bool = True,
) -> list[JobInfo | None]:
    """One pipelined round trip for a batch of registry entries (None: no job hash)."""
    pipe = client.pipeline(transaction=False)
    for member in members:
        key = layout.job_key(member.split(":", 1)[0])
        pipe.hstrlen(key, "data")
        pipe.hmget(key, ["description", "enqueued_at", "created_at", "origin", "status"])
        if memory:
            pipe.memory_usage(key, samples=0)
    replies = iter(pipe.execute())
    found: list[JobInfo | None] = []
    for member in members:
        size, fields = next(replies), next(replies)
        used = next(replies) if memory else None
        description, enqueued, created, origin, status = (
            None if f is None else _text(f) for f in fields
        )
        if status is None and not size:
            found.append(None)
            continue
        stamp = parse_stamp(enqueued) or parse_stamp(created)
        found.append(
            JobInfo(
                id=member.split(":", 1)[0],
                queue=origin or queue,
                registry=registry,
                function=function_of(description),
                data_bytes=int(size or 0),
                memory_bytes=None if used is None else int(used),
                age=None if stamp is None else max(0.0, now - stamp),
                status=status or "",
                member=member,
            )
        )
    return found


def orphan_batches(
    client: redis.Redis, layout: RqLayout, batch: int, now: float, *, memory: bool = True
) -> Iterator[list[JobInfo]]:
    """Job hashes that the registry their status names does not list (SCAN, in batches)."""
    head = f"{layout.prefix}:job:"
    for keys in _scan(client, f"{head}*", batch):
        ids = [k[len(head) :] for k in keys if ":" not in k[len(head) :]]
        infos = [
            i
            for i in describe_jobs(client, layout, ids, "", ORPHANED, now, memory=memory)
            if i is not None
        ]
        pipe = client.pipeline(transaction=False)
        checks: list[JobInfo] = []
        for info in infos:
            registry = _STATUS_REGISTRY.get(info.status)
            if registry is None or registry == "started" or not info.queue:
                continue  # running, or a state with no registry: not judged
            key = layout.registry_key(info.queue, registry)
            pipe.lpos(key, info.id) if registry == "queued" else pipe.zscore(key, info.id)
            checks.append(info)
        listed = pipe.execute() if checks else []
        orphans = [info for info, where in zip(checks, listed, strict=True) if where is None]
        if orphans:
            yield orphans


def _scan(client: redis.Redis, pattern: str, batch: int) -> Iterator[list[str]]:
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=pattern, count=batch)
        if keys:
            yield [_text(k) for k in keys]
        if cursor == 0:
            return
