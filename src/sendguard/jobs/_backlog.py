"""`inspect_backlog`: what an RQ backlog holds, per queue and registry, never deserialising a job.

For each queue and registry: the count (``LLEN``/``ZCARD``), the stored bytes
(``HSTRLEN data``, and ``MEMORY USAGE`` of each job's hash), the oldest job's age; over
everything: the functions holding the most bytes and the largest jobs. Ids are read in
batches (``LRANGE`` chunks for a queue, ``ZSCAN`` for a registry) and each batch's
sizes in one pipelined round trip, so memory stays bounded by the batch, the top-N lists
and the number of distinct functions (itself capped), however large the backlog.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sendguard._core.errors import ConfigError
from sendguard.jobs._rq_layout import (
    ORPHANED,
    REGISTRIES,
    JobInfo,
    RqLayout,
    describe_jobs,
    list_batches,
    orphan_batches,
    queue_names,
    zset_batches,
)

if TYPE_CHECKING:
    import redis

__all__ = ["BacklogReport", "FunctionStats", "RegistryStats", "inspect_backlog", "registry_jobs"]

MAX_FUNCTIONS = 10_000
"""Distinct function names tallied; the rest are counted under ``(other)``."""


@dataclass(frozen=True, slots=True)
class RegistryStats:
    """One queue's registry: how many jobs, how many bytes, how old the oldest is."""

    queue: str
    registry: str
    count: int
    """From ``LLEN``/``ZCARD`` (or, for orphans, the jobs found)."""
    data_bytes: int
    memory_bytes: int | None
    oldest_age: float | None
    missing: int
    """Entries whose job hash no longer exists."""


@dataclass(frozen=True, slots=True)
class FunctionStats:
    """The jobs of one function, over every queue and registry inspected."""

    function: str
    count: int
    data_bytes: int
    largest: int


@dataclass(frozen=True, slots=True)
class BacklogReport:
    """What `inspect_backlog` found."""

    registries: tuple[RegistryStats, ...]
    functions: tuple[FunctionStats, ...]
    """Functions by bytes held, largest first (at most `top`)."""
    largest: tuple[JobInfo, ...]
    """The largest jobs by stored bytes (at most `top`)."""
    seconds: float

    @property
    def jobs(self) -> int:
        """Jobs in every registry reported."""
        return sum(r.count for r in self.registries)

    @property
    def data_bytes(self) -> int:
        """Stored payload bytes in every registry reported."""
        return sum(r.data_bytes for r in self.registries)


class _Tally:
    __slots__ = ("data", "memory", "missing", "oldest", "seen")

    def __init__(self) -> None:
        self.seen = self.data = self.missing = 0
        self.memory: int | None = None
        self.oldest: float | None = None

    def add(self, info: JobInfo) -> None:
        self.seen += 1
        self.data += info.data_bytes
        if info.memory_bytes is not None:
            self.memory = (self.memory or 0) + info.memory_bytes
        if info.age is not None and (self.oldest is None or info.age > self.oldest):
            self.oldest = info.age


class _Totals:
    """The functions table and the largest-jobs heap, both bounded."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.functions: dict[str, list[int]] = {}
        self.heap: list[tuple[int, int, JobInfo]] = []
        self.order = 0

    def add(self, info: JobInfo) -> None:
        name = info.function
        if name not in self.functions and len(self.functions) >= MAX_FUNCTIONS:
            name = "(other)"
        row = self.functions.setdefault(name, [0, 0, 0])
        row[0] += 1
        row[1] += info.data_bytes
        row[2] = max(row[2], info.data_bytes)
        self.order += 1
        item = (info.data_bytes, -self.order, info)
        if not self.top:  # counts and bytes only: no largest jobs asked for
            return
        if len(self.heap) < self.top:
            heapq.heappush(self.heap, item)
        elif item[:2] > self.heap[0][:2]:
            heapq.heapreplace(self.heap, item)

    def functions_by_bytes(self) -> tuple[FunctionStats, ...]:
        rows = sorted(self.functions.items(), key=lambda kv: (-kv[1][1], kv[0]))[: self.top]
        return tuple(FunctionStats(name, c, b, big) for name, (c, b, big) in rows)

    def largest(self) -> tuple[JobInfo, ...]:
        return tuple(info for _, _, info in sorted(self.heap, key=lambda i: i[:2], reverse=True))


def _check(batch: int, top: int) -> None:
    if not isinstance(batch, int) or not 1 <= batch <= 10_000:
        raise ConfigError(f"batch must be a whole number in [1, 10000], got {batch!r}")
    if not isinstance(top, int) or not 0 <= top <= 10_000:
        raise ConfigError(f"top must be a whole number in [0, 10000], got {top!r}")


def registry_jobs(
    client: redis.Redis,
    layout: RqLayout,
    queue: str,
    registry: str,
    batch: int,
    now: float,
    *,
    memory: bool = True,
) -> Iterator[list[JobInfo | None]]:
    """The jobs of one registry of `queue`, a batch at a time (None: entry without a hash)."""
    key = layout.registry_key(queue, registry)
    chunks: Iterable[list[str]] = (
        list_batches(client, key, batch)
        if registry == "queued"
        else zset_batches(client, key, batch)
    )
    for members in chunks:
        yield describe_jobs(client, layout, members, queue, registry, now, memory=memory)


def inspect_backlog(
    client: redis.Redis,
    *,
    queues: Sequence[str] | None = None,
    prefix: str = "rq",
    top: int = 10,
    batch: int = 500,
    memory: bool = True,
    orphans: bool = False,
    now: float | None = None,
) -> BacklogReport:
    """Inspect the RQ backlog in `client`'s Redis (every queue, or `queues`).

    `memory` adds ``MEMORY USAGE`` per job (a little slower); `orphans` also SCANs every
    job key for hashes no registry lists (what removing ids from a registry by hand leaves).
    """
    _check(batch, top)
    started = time.monotonic()
    moment = time.time() if now is None else now
    layout = RqLayout(prefix)
    totals = _Totals(top)
    rows: list[RegistryStats] = []
    for queue in queues or queue_names(client, layout):
        pipe = client.pipeline(transaction=False)
        for registry in REGISTRIES:
            key = layout.registry_key(queue, registry)
            pipe.llen(key) if registry == "queued" else pipe.zcard(key)
        counts = pipe.execute()
        for registry, count in zip(REGISTRIES, counts, strict=True):
            if not count:
                continue
            tally = _Tally()
            for infos in registry_jobs(
                client, layout, queue, registry, batch, moment, memory=memory
            ):
                for info in infos:
                    if info is None:
                        tally.missing += 1
                    else:
                        tally.add(info)
                        totals.add(info)
            rows.append(
                RegistryStats(
                    queue,
                    registry,
                    int(count),
                    tally.data,
                    tally.memory,
                    tally.oldest,
                    tally.missing,
                )
            )
    if orphans:
        tally = _Tally()
        for found in orphan_batches(client, layout, batch, moment, memory=memory):
            for info in found:
                tally.add(info)
                totals.add(info)
        rows.append(
            RegistryStats("*", ORPHANED, tally.seen, tally.data, tally.memory, tally.oldest, 0)
        )
    return BacklogReport(
        tuple(rows), totals.functions_by_bytes(), totals.largest(), time.monotonic() - started
    )
