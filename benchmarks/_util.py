"""Shared helpers for the benchmarks: interleaved ns/call timing and Redis round-trip counting.

Nothing here runs on import. The benchmarks are scripts (``python benchmarks/<name>.py``),
never part of the test suite.
"""

from __future__ import annotations

import gc
import json
import statistics
import timeit
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

__all__ = [
    "CountingConnection",
    "RoundTrips",
    "Timing",
    "command_counts",
    "counting_client",
    "emit_json",
    "time_per_call",
]


@dataclass(frozen=True, slots=True)
class Timing:
    """Nanoseconds per call: best and median over the repeats."""

    best: float
    median: float

    def minus(self, base: Timing) -> Timing:
        """The overhead over `base` (best - best, median - median)."""
        return Timing(self.best - base.best, self.median - base.median)


def time_per_call(
    stmts: Mapping[str, tuple[str, dict[str, Any]]], *, number: int, repeat: int
) -> dict[str, Timing]:
    """Time each ``name -> (statement, globals)`` `number` times per repeat, interleaved.

    Every repeat times all the statements one after the other, so drift (CPU frequency,
    a noisy neighbour) hits them alike. `timeit` turns the garbage collector off while it
    times; we also collect before each measurement so no pause is pending.
    """
    timers = {name: timeit.Timer(stmt, globals=env) for name, (stmt, env) in stmts.items()}
    for timer in timers.values():  # warm up: first calls, lazy set-up, caches
        timer.timeit(min(number, 1000))
    samples: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(repeat):
        for name, timer in timers.items():
            gc.collect()
            samples[name].append(timer.timeit(number) * 1e9 / number)
    return {n: Timing(min(s), statistics.median(s)) for n, s in samples.items()}


class RoundTrips:
    """A count of writes to Redis, shared by the connections of one client."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class CountingConnection(redis.Connection):
    """A redis-py connection that counts `send_packed_command` calls.

    redis-py sends every request through `send_packed_command` exactly once and then
    reads the replies: a single command, a whole pipeline (all its commands packed into
    one write) and an EVALSHA of a Lua script are each one call, so this counts round
    trips, not commands. Connection set-up (HELLO, CLIENT SETINFO) goes through it too:
    warm a client up before taking a baseline.
    """

    def __init__(self, *, counter: RoundTrips, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.counter = counter

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.counter.count += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


def counting_client(port: int, **options: Any) -> tuple[redis.Redis, RoundTrips]:
    """A client of 127.0.0.1:`port` whose round trips are counted (no decoding by default)."""
    counter = RoundTrips()
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, host="127.0.0.1", port=port, counter=counter,
        socket_timeout=2.0, health_check_interval=0, **options,
    )  # fmt: skip
    return redis.Redis(connection_pool=pool), counter


def command_counts(client: redis.Redis) -> dict[str, int]:
    """Server-side calls per command name (``INFO commandstats``), all clients together."""
    stats: dict[str, Any] = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def emit_json(result: Mapping[str, Any]) -> None:
    """Print `result` as one JSON line (the benchmark's last stdout line)."""
    print(json.dumps(result, separators=(", ", ": ")), flush=True)
