"""`purge_backlog`: remove the jobs that match a filter, safely, from a backlog of any size.

A dry run unless ``execute=True``. Registries are read by ``ZSCAN`` and queues by
``LRANGE`` chunks, a batch at a time; each batch is described in one pipelined round trip
(sizes and descriptions, never the payload) and its matches removed in another: from the
registry they were found in and the one their status names, then their hash and the keys
that go with it (dependents, results, executions) are deleted. Memory stays bounded by
the batch size and the sample kept for the report. Running jobs (the ``started``
registry) are left alone unless asked for.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sendguard._core.errors import ConfigError
from sendguard.jobs._backlog import registry_jobs
from sendguard.jobs._rq_layout import (
    ORPHANED,
    REGISTRIES,
    JobInfo,
    RqLayout,
    describe_jobs,
    list_batches,
    orphan_batches,
    queue_names,
)

if TYPE_CHECKING:
    import redis

__all__ = ["DEFAULT_PURGE_REGISTRIES", "PurgeFilter", "PurgeReport", "purge_backlog"]

DEFAULT_PURGE_REGISTRIES = tuple(r for r in REGISTRIES if r != "started")
_STATUS_REGISTRY = {
    "queued": "queued",
    "scheduled": "scheduled",
    "deferred": "deferred",
    "failed": "failed",
    "stopped": "failed",
    "finished": "finished",
    "canceled": "canceled",
}


@dataclass(frozen=True, slots=True)
class PurgeFilter:
    """Which jobs to purge: every criterion given must hold.

    Args:
        function: a substring of the function's dotted name, or a shell pattern
            (``app.jobs.send_*``) when it has ``*``, ``?`` or ``[``.
        min_bytes: stored payload (``HSTRLEN data``) at least this many bytes.
        older_than: enqueued (else created) at least this many seconds ago.
        registries: where to look (default: all but ``started``; add ``orphaned`` for
            hashes no registry lists).
        queues: which queues (default: every queue RQ knows).
        everything: required when no criterion is given (purge whole registries).
    """

    function: str | None = None
    min_bytes: int | None = None
    older_than: float | None = None
    registries: tuple[str, ...] = DEFAULT_PURGE_REGISTRIES
    queues: tuple[str, ...] = ()
    everything: bool = False

    def __post_init__(self) -> None:
        unknown = [r for r in self.registries if r not in (*REGISTRIES, ORPHANED)]
        if unknown or not self.registries:
            raise ConfigError(
                f"PurgeFilter.registries must be some of {(*REGISTRIES, ORPHANED)}, "
                f"got {self.registries!r}"
            )
        if self.min_bytes is not None and (
            not isinstance(self.min_bytes, int) or self.min_bytes < 0
        ):
            raise ConfigError(f"PurgeFilter.min_bytes must be >= 0, got {self.min_bytes!r}")
        if self.older_than is not None and not (
            isinstance(self.older_than, int | float)
            and math.isfinite(self.older_than)
            and self.older_than >= 0
        ):
            raise ConfigError(
                f"PurgeFilter.older_than must be >= 0 seconds, got {self.older_than!r}"
            )
        if self.function == "":
            raise ConfigError("PurgeFilter.function must not be empty")
        if self.is_empty and not self.everything:
            raise ConfigError(
                "no criterion given: pass a function, min_bytes or older_than "
                "(or everything=True to purge whole registries)"
            )

    @property
    def is_empty(self) -> bool:
        """True when no criterion narrows the selection."""
        return self.function is None and self.min_bytes is None and self.older_than is None

    def matches(self, job: JobInfo) -> bool:
        """Does `job` meet every criterion?"""
        if self.function is not None:
            pattern = self.function
            if any(c in pattern for c in "*?["):
                if not fnmatch.fnmatchcase(job.function, pattern):
                    return False
            elif pattern not in job.function:
                return False
        if self.min_bytes is not None and job.data_bytes < self.min_bytes:
            return False
        return self.older_than is None or (job.age is not None and job.age >= self.older_than)


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge matched (and, when executed, removed)."""

    executed: bool
    matched: int
    matched_bytes: int
    deleted: int
    """Job hashes deleted (0 in a dry run)."""
    by_registry: dict[tuple[str, str], int] = field(default_factory=dict)
    sample: tuple[JobInfo, ...] = ()
    """The first matches (at most `sample` of them)."""
    seconds: float = 0.0


class _Purge:
    def __init__(
        self, client: redis.Redis, layout: RqLayout, wanted: PurgeFilter, execute: bool, sample: int
    ) -> None:
        self.client, self.layout, self.wanted, self.execute = client, layout, wanted, execute
        self.sample_size = sample
        self.matched = self.bytes = self.deleted = 0
        self.by_registry: dict[tuple[str, str], int] = {}
        self.sample: list[JobInfo] = []

    def take(self, infos: Sequence[JobInfo | None]) -> int:
        """Count (and, executing, remove) the matches of a batch; returns how many matched."""
        hits = [i for i in infos if i is not None and self.wanted.matches(i)]
        for info in hits:
            self.matched += 1
            self.bytes += info.data_bytes
            where = (info.queue, info.registry)
            self.by_registry[where] = self.by_registry.get(where, 0) + 1
            if len(self.sample) < self.sample_size:
                self.sample.append(info)
        if hits and self.execute:
            self._remove(hits)
        return len(hits)

    def _remove(self, hits: Sequence[JobInfo]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for info in hits:
            # Where it was found, and where its status says it is (a queued job that was
            # found in the failed registry after a crash, say).
            for registry in {info.registry, _STATUS_REGISTRY.get(info.status, info.registry)}:
                if registry == ORPHANED:
                    continue
                key = self.layout.registry_key(info.queue, registry)
                member = info.member if registry == info.registry else info.id
                pipe.lrem(key, 0, member) if registry == "queued" else pipe.zrem(key, member)
            pipe.delete(*self.layout.extra_keys(info.id))
        for info in hits:
            pipe.delete(self.layout.job_key(info.id))
        replies: list[Any] = pipe.execute()
        self.deleted += sum(int(reply) for reply in replies[-len(hits) :])


def purge_backlog(
    client: redis.Redis,
    wanted: PurgeFilter,
    *,
    execute: bool = False,
    prefix: str = "rq",
    batch: int = 500,
    sample: int = 20,
    now: float | None = None,
) -> PurgeReport:
    """Find (and with `execute`, remove) the jobs `wanted` selects. A dry run by default."""
    if not isinstance(batch, int) or not 1 <= batch <= 10_000:
        raise ConfigError(f"batch must be a whole number in [1, 10000], got {batch!r}")
    started = time.monotonic()
    moment = time.time() if now is None else now
    layout = RqLayout(prefix)
    run = _Purge(client, layout, wanted, execute, sample)
    for queue in wanted.queues or queue_names(client, layout):
        for registry in wanted.registries:
            if registry == ORPHANED:
                continue
            if registry == "queued" and execute:
                _purge_list(client, layout, run, queue, batch, moment)
                continue
            for infos in registry_jobs(
                client, layout, queue, registry, batch, moment, memory=False
            ):
                run.take(infos)
    if ORPHANED in wanted.registries:
        for found in orphan_batches(client, layout, batch, moment, memory=False):
            run.take([i for i in found if not wanted.queues or i.queue in wanted.queues])
    return PurgeReport(
        execute,
        run.matched,
        run.bytes,
        run.deleted,
        run.by_registry,
        tuple(run.sample),
        time.monotonic() - started,
    )


def _purge_list(
    client: redis.Redis, layout: RqLayout, run: _Purge, queue: str, batch: int, now: float
) -> None:
    """A queue list shifts as entries go: tell the reader how many of its batch went."""
    chunks = list_batches(client, layout.registry_key(queue, "queued"), batch)
    members = next(chunks, None)
    while members is not None:
        removed = run.take(
            describe_jobs(client, layout, members, queue, "queued", now, memory=False)
        )
        try:
            members = chunks.send(removed)
        except StopIteration:
            return
