"""Circuit breakers side by side: sendguard vs pybreaker vs circuitbreaker, in one run.

    .venv/bin/python benchmarks/breakers.py            # full run (~half a minute)
    .venv/bin/python benchmarks/breakers.py --quick    # smaller run, for a smoke test

What is measured (closed breakers throughout; nothing here trips):

1. Overhead per successful call, in-process state. Each form is timed with `timeit` (gc
   off) for N calls, in interleaved repeats together with the baseline ``f()``;
   overhead = time per guarded call - time per direct call, from the best repeat (the
   median is shown too). Forms: ``cb.call(f)`` with ``cb = BreakerRegistry(Breaker())
   .get("x")``, the ``@cb`` decorator, ``pybreaker.CircuitBreaker().call(f)`` and
   ``@circuitbreaker.circuit``.
2. Concurrency: 8 threads x 5 calls of a function that sleeps 20 ms, all through ONE
   breaker; wall time / wall time of the same threads without a breaker (best repeat).
   1.0 means the breaker never serialises calls; pybreaker holds its lock across the
   call, so it runs them one at a time (about 8).
3. Redis round trips per call, against a real redis-server (sendguard.testing.servers.
   RedisServer), for a success loop and a failure loop (a policy that cannot trip, so
   every failure is recorded in the closed state). Each loop calls a function that
   sleeps 0.5 ms (a fast dependency), so it spans several of sendguard's default 0.5 s
   sync intervals and the periodic refresh shows up in the average. Round trips are
   counted on the client: `benchmarks._util.CountingConnection` counts redis-py's
   `send_packed_command`, which runs once per request whatever it carries (one command,
   a pipeline, an EVALSHA of a Lua script), so it counts round trips, not commands.
   The server's ``INFO commandstats`` delta is printed next to it as a cross-check.
   The breaker's first call (index SADD, first read, script load) is shown apart.

The last stdout line is one JSON object. ``*_ns`` keys are overhead in ns per call
(best repeat; ``*_ns_median`` the median); ``*_ratio`` keys are sendguard / pybreaker
(``success_ratio``, target <= 0.5) and threaded wall time / unguarded wall time
(``threads_ratio``, target <= 1.2); ``redis_rtt_*`` are round trips per call (targets:
success <= 0.05, failure <= 1); ``targets_met`` maps each target to a bool.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import circuitbreaker
import pybreaker
import redis

from benchmarks._util import (
    RoundTrips,
    Timing,
    command_counts,
    counting_client,
    emit_json,
    time_per_call,
)
from sendguard.breakers import Breaker, BreakerRegistry, State
from sendguard.breakers.redis_store import RedisBreakerStore
from sendguard.testing.servers import RedisServer

TARGETS = {
    "success_ratio": 0.5,
    "threads_ratio": 1.2,
    "redis_rtt_success": 0.05,
    "redis_rtt_failure": 1.0,
}
THREADS, THREAD_CALLS, NAP = 8, 5, 0.020
PACE = 0.0005
"""Seconds each call of the Redis loops takes (a fast dependency)."""


@dataclass(frozen=True, slots=True)
class Config:
    number: int  # calls per timing repeat
    repeat: int  # timing repeats
    thread_repeat: int  # repeats of the threaded run
    redis_calls: int  # calls per Redis loop (>= 1000)


FULL = Config(number=200_000, repeat=7, thread_repeat=5, redis_calls=4000)
QUICK = Config(number=20_000, repeat=3, thread_repeat=2, redis_calls=1000)


class Boom(Exception):
    """The failure the guarded functions raise."""


def ok() -> int:
    return 1


def nap() -> None:
    time.sleep(NAP)


def paced_ok() -> None:
    time.sleep(PACE)


def paced_boom() -> None:
    time.sleep(PACE)
    raise Boom("dependency down")


# --- 1. overhead per successful call -----------------------------------------------------


def success_overhead(cfg: Config) -> dict[str, Timing]:
    """ns per call of each form minus ns per direct call."""
    cb = BreakerRegistry(Breaker()).get("x")
    pb = pybreaker.CircuitBreaker()
    stmts: dict[str, tuple[str, dict[str, Any]]] = {
        "direct": ("f()", {"f": ok}),
        "sendguard": ("cb.call(f)", {"cb": cb, "f": ok}),
        "sendguard_decorated": ("g()", {"g": cb(ok)}),
        "pybreaker": ("pb.call(f)", {"pb": pb, "f": ok}),
        "circuitbreaker": ("h()", {"h": circuitbreaker.circuit(ok)}),
    }
    raw = time_per_call(stmts, number=cfg.number, repeat=cfg.repeat)
    if cb.state is not State.CLOSED or cb.stats.as_dict()["success"] < cfg.number:
        raise RuntimeError(f"sendguard breaker did not record the calls: {cb.stats.as_dict()}")
    return {"direct": raw["direct"]} | {
        name: t.minus(raw["direct"]) for name, t in raw.items() if name != "direct"
    }


# --- 2. threads through one breaker -------------------------------------------------------


def threaded_wall(do: Callable[[], object]) -> float:
    """Seconds for THREADS threads, started together, to make THREAD_CALLS calls of `do`."""
    barrier = threading.Barrier(THREADS + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(THREAD_CALLS):
            do()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
    for thread in pool:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in pool:
        thread.join()
    return time.perf_counter() - start


def threads(cfg: Config) -> dict[str, Timing]:
    """Wall time of each contender / wall time unguarded, best repeat (and median)."""
    cb = BreakerRegistry(Breaker()).get("threads")
    contenders: dict[str, Callable[[], object]] = {
        "direct": nap,
        "sendguard": functools.partial(cb.call, nap),
        "pybreaker": functools.partial(pybreaker.CircuitBreaker().call, nap),
        "circuitbreaker": circuitbreaker.circuit(nap),
    }
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(cfg.thread_repeat):
        for name, do in contenders.items():
            walls[name].append(threaded_wall(do))
    best, med = min(walls["direct"]), statistics.median(walls["direct"])
    return {n: Timing(min(w) / best, statistics.median(w) / med) for n, w in walls.items()}


# --- 3. Redis round trips ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trips:
    per_call: float
    calls: int
    trips: int
    first_call: int  # round trips of the first call (set-up), not in per_call
    seconds: float
    server: dict[str, int]  # server-side commands during the loop (INFO commandstats delta)


def attempt(call: Callable[[], object]) -> None:
    with contextlib.suppress(Boom):
        call()


def count_trips(
    call: Callable[[], object], counter: RoundTrips, admin: redis.Redis, calls: int
) -> Trips:
    """Round trips per call of `calls` calls of `call`, after one set-up call."""
    mark = counter.count
    attempt(call)
    first = counter.count - mark
    before, mark = command_counts(admin), counter.count
    start = time.perf_counter()
    for _ in range(calls):
        attempt(call)
    seconds = time.perf_counter() - start
    trips = counter.count - mark
    after = command_counts(admin)
    server = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    server.pop("info", None)  # our own INFO
    return Trips(trips / calls, calls, trips, first, seconds, server)


def redis_trips(cfg: Config) -> tuple[dict[str, Trips], str]:
    """Round trips per call over Redis for each library and outcome; and the server version."""
    n = cfg.redis_calls
    with RedisServer() as server:
        admin = redis.Redis(host="127.0.0.1", port=server.port)
        sg_client, sg_trips = counting_client(server.port)
        pb_client, pb_trips = counting_client(server.port)
        try:
            sg_client.ping()  # connect (HELLO/SETINFO) before counting anything
            pb_client.ping()
            store = RedisBreakerStore(client=sg_client)
            never_trips = Breaker(failure_rate=1.0, min_calls=10**6)
            good = BreakerRegistry(Breaker(), store=store).get("bench-success")
            bad = BreakerRegistry(never_trips, store=store).get("bench-failure")
            res = {
                "sendguard_success": count_trips(lambda: good.call(paced_ok), sg_trips, admin, n),
                "sendguard_failure": count_trips(lambda: bad.call(paced_boom), sg_trips, admin, n),
            }
            failures = bad.stats.as_dict()["failure"]
            if bad.state is not State.CLOSED or failures != n + 1 or not bad.shared:
                raise RuntimeError(f"sendguard failure loop invalid: {bad!r}, {failures=}")

            def pybreaker_on(namespace: str) -> pybreaker.CircuitBreaker:
                storage = pybreaker.CircuitRedisStorage(
                    pybreaker.STATE_CLOSED, pb_client, namespace=namespace
                )
                return pybreaker.CircuitBreaker(fail_max=10**9, state_storage=storage)

            pb_good, pb_bad = pybreaker_on("bench-success"), pybreaker_on("bench-failure")
            res["pybreaker_success"] = count_trips(
                lambda: pb_good.call(paced_ok), pb_trips, admin, n
            )
            res["pybreaker_failure"] = count_trips(
                lambda: pb_bad.call(paced_boom), pb_trips, admin, n
            )
            if pb_bad.current_state != pybreaker.STATE_CLOSED or pb_bad.fail_counter != n + 1:
                raise RuntimeError(f"pybreaker failure loop invalid: {pb_bad.fail_counter=}")
            info: dict[str, Any] = admin.info("server")
            return res, str(info["redis_version"])
        finally:
            for client in (sg_client, pb_client, admin):
                client.close()


# --- report --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    cfg = QUICK if parser.parse_args(argv).quick else FULL
    began = time.perf_counter()
    py = platform.python_version()
    pb_ver, cb_ver = version("pybreaker"), version("circuitbreaker")
    print(f"sendguard breakers benchmark ({'quick' if cfg is QUICK else 'full'} run)")
    print(f"python {py} ({platform.python_implementation()}), pybreaker {pb_ver}, "
          f"circuitbreaker {cb_ver}, redis-py {version('redis')}")  # fmt: skip

    ns = success_overhead(cfg)
    print(f"\n1. Overhead per successful call, in-process state ({cfg.number:,} calls x "
          f"{cfg.repeat} repeats, gc off; best / median of repeats)")  # fmt: skip
    print(f"   {'direct f() (baseline, total)':<36}{ns['direct'].best:8.1f} ns"
          f"{ns['direct'].median:9.1f} ns")  # fmt: skip
    for name, label in (
        ("sendguard", "sendguard cb.call(f)"),
        ("sendguard_decorated", "sendguard @cb"),
        ("pybreaker", "pybreaker .call(f)"),
        ("circuitbreaker", "circuitbreaker @circuit"),
    ):
        print(f"   {label:<36}{ns[name].best:8.1f} ns{ns[name].median:9.1f} ns")
    success_ratio = ns["sendguard"].best / ns["pybreaker"].best
    median_ratio = ns["sendguard"].median / ns["pybreaker"].median
    print(f"   success_ratio = sendguard / pybreaker = {success_ratio:.3f}"
          f" (median {median_ratio:.3f}; target <= 0.5)")  # fmt: skip

    th = threads(cfg)
    print(f"\n2. {THREADS} threads x {THREAD_CALLS} calls of a {NAP * 1000:.0f} ms function "
          f"through one breaker ({cfg.thread_repeat} repeats): wall / unguarded wall")  # fmt: skip
    for name in ("sendguard", "pybreaker", "circuitbreaker"):
        print(f"   {name:<36}{th[name].best:8.2f} x  (median {th[name].median:.2f} x)")
    print("   target for sendguard <= 1.2; pybreaker holds a lock across the call (~8 x)")

    trips, redis_version = redis_trips(cfg)
    print(f"\n3. Redis round trips per call (real redis-server {redis_version}; "
          f"{cfg.redis_calls:,} calls of a {PACE * 1000:.1f} ms function per loop)")  # fmt: skip
    print(f"   {'loop':<20}{'rtt/call':>9}{'trips':>7}{'secs':>7}{'1st call':>9}"
          "   server commands during the loop")  # fmt: skip
    for name, t in trips.items():
        cmds = ", ".join(f"{k}={v}" for k, v in sorted(t.server.items())) or "none"
        row = f"{t.per_call:9.4f}{t.trips:7d}{t.seconds:7.2f}{t.first_call:9d}"
        print(f"   {name:<20}{row}   {cmds}")
    print("   (server counts include commands run inside a Lua script: one EVALSHA round trip")
    print("   shows as evalsha=1 plus the script's own hmget/time; '1st call' is not in rtt/call)")
    print("   targets: sendguard success <= 0.05, failure <= 1 "
          "(sendguard refreshes its view once per sync_interval = 0.5 s)")  # fmt: skip

    result: dict[str, Any] = {
        "success_ns": ns["sendguard"].best,
        "success_ns_median": ns["sendguard"].median,
        "decorated_success_ns": ns["sendguard_decorated"].best,
        "decorated_success_ns_median": ns["sendguard_decorated"].median,
        "pybreaker_success_ns": ns["pybreaker"].best,
        "pybreaker_success_ns_median": ns["pybreaker"].median,
        "circuitbreaker_success_ns": ns["circuitbreaker"].best,
        "circuitbreaker_success_ns_median": ns["circuitbreaker"].median,
        "baseline_call_ns": ns["direct"].best,
        "success_ratio": success_ratio,
        "threads_ratio": th["sendguard"].best,
        "threads_ratio_median": th["sendguard"].median,
        "pybreaker_threads_ratio": th["pybreaker"].best,
        "circuitbreaker_threads_ratio": th["circuitbreaker"].best,
        "redis_rtt_success": trips["sendguard_success"].per_call,
        "redis_rtt_failure": trips["sendguard_failure"].per_call,
        "pybreaker_redis_rtt_success": trips["pybreaker_success"].per_call,
        "pybreaker_redis_rtt_failure": trips["pybreaker_failure"].per_call,
        "redis_first_call_rtt": {k: t.first_call for k, t in trips.items()},
        "redis_calls": cfg.redis_calls,
    }
    result["targets_met"] = {k: result[k] <= limit for k, limit in TARGETS.items()}
    result |= {
        "quick": cfg is QUICK,
        "seconds": round(time.perf_counter() - began, 2),
        "python": py,
        "pybreaker_version": pb_ver,
        "circuitbreaker_version": cb_ver,
        "redis_server_version": redis_version,
    }
    met = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in result["targets_met"].items())
    print(f"\ntargets: {met}\nrun time {result['seconds']:.1f} s\n")
    emit_json(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
