"""The guard middleware side by side: bare Starlette vs sendguard vs slowapi, through uvicorn.

    .venv/bin/python benchmarks/middleware.py            # full run (~3 minutes)
    .venv/bin/python benchmarks/middleware.py --quick    # smaller run, for a smoke test
    .venv/bin/python benchmarks/middleware.py --profile  # also print the in-process profile
    .venv/bin/python benchmarks/middleware.py --instructions  # instructions per request

1. Throughput through a real server. One Starlette app (a JSON ``/ping``,
   ``/archive/{slug}``, ``/v1/emails/{id}/analytics``) is served by uvicorn (one worker,
   a subprocess on a free loopback port, so load generator and server never share a GIL)
   in five variants, all started at once and loaded in turn by ``wrk`` (one thread, 32
   keep-alive connections, the three paths in rotation): ``bare``; ``memory``:
   `GuardMiddleware` with a baseline of two rates (the issue's ``10/second;120/minute``
   shape) set so high that nothing is refused (this measures overhead, not refusals), a
   breaker and a bulkhead on every route, in-process state; ``redis``: the same on a real
   redis-server (`RedisServer`); ``slowapi_memory`` / ``slowapi_redis``: slowapi's
   pure-ASGI middleware with the same rates as its default limit, on the same
   sliding-window-counter algorithm; ``memory_one_limit``: ``memory`` with only the first
   rate (one item in each RateLimit field), reported without a target. Rounds
   alternate the variants (each round starts one later); the median requests/s of each
   is reported, and any non-2xx answer is counted (there should be none). With two CPUs
   or more, the servers run on one half and wrk and redis-server on the other.
2. In-process cost of the guard stack (``stack_us``): the same apps called directly as
   ASGI, many requests in a row, with and without `GuardMiddleware`, interleaved
   repeats; the difference per request (best repeat). Also: the middleware around a
   no-op app, ``aenter`` + ``aleave`` alone, Redis, slowapi, and ``part_*_us``: what
   removing one part (the limits, the breaker, the bulkhead, the route lookup) saves.

3. With ``--instructions`` (instead of 1 and 2; needs valgrind): the instructions each
   in-process variant's server executes per request under callgrind, and their ratios
   to bare. Unlike requests/s, they hardly move between runs (see `_instructions`).

Targets: ``memory_ratio`` (memory_rps / bare_rps) >= 0.85; ``redis_rps`` >= 2 x
``slowapi_redis_rps``. When one is missed (or with ``--profile``), a cProfile of the
in-process stack shows where sendguard spends the time. The last stdout line is one JSON
object with every figure and ``targets_met``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, MutableMapping
from importlib.metadata import version
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._instructions import callgrind_available, instructions_per_request
from benchmarks._util import (
    ASGIApp,
    asgi_per_request,
    cpu_seconds,
    cpu_split,
    emit_json,
    profile_async,
    run_wrk,
    start_server_process,
    stop_process,
)
from sendguard import Breaker, Bulkhead, Guard, RoutePolicy
from sendguard.asgi import GuardMiddleware
from sendguard.testing.servers import RedisServer, free_port

VARIANTS = ("bare", "memory", "redis", "slowapi_memory", "slowapi_redis", "memory_one_limit")
HIGH_LIMITS = "1000000/second;100000000/minute"
"""Every route's limits in the guarded variants: far above what one server can serve."""
HIGH_LIMIT = "1000000/second"
"""The baseline of ``memory_one_limit``: the first of those rates alone."""
PATHS = ("/ping", "/archive/welcome-issue", "/v1/emails/42/analytics")
TARGETS = {"memory_ratio": 0.85, "redis_vs_slowapi": 2.0}
WRK_CONNECTIONS = 32


def starlette_app() -> Any:
    """The bare Starlette app: three cheap JSON routes."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def archive(request: Request) -> JSONResponse:
        return JSONResponse({"slug": request.path_params["slug"], "title": "An issue"})

    async def analytics(request: Request) -> JSONResponse:
        return JSONResponse({"email": request.path_params["id"], "opens": 12, "clicks": 3})

    return Starlette(
        routes=[
            Route("/ping", ping),
            Route("/archive/{slug}", archive),
            Route("/v1/emails/{id}/analytics", analytics),
        ]
    )


def guarded_app(
    store: str | None,
    *,
    limits: bool = True,
    breaker: bool = True,
    bulkhead: bool = True,
    template: Callable[[MutableMapping[str, Any]], str | None] | None = None,
    rates: str = HIGH_LIMITS,
) -> GuardMiddleware:
    """The app behind `GuardMiddleware`: limits, breaker and bulkhead on every route.

    The switches and `template` remove one part at a time (the in-process breakdown).
    """
    guard = Guard(
        store=store,
        baseline=RoutePolicy(
            limits=rates if limits else None,
            breaker=Breaker.rate(0.5, slow=2.0) if breaker else None,
            bulkhead=Bulkhead(4 * WRK_CONNECTIONS, max_wait=0.05) if bulkhead else None,
        ),
    )
    return GuardMiddleware(starlette_app(), guard, template=template)


def make_app(variant: str, redis_url: str | None = None) -> ASGIApp:
    """The benchmark app in one of `VARIANTS` (Redis variants need `redis_url`)."""
    if variant == "bare":
        return cast(ASGIApp, starlette_app())
    if variant in ("memory", "redis"):
        return guarded_app(redis_url if variant == "redis" else None)
    if variant == "memory_one_limit":
        return guarded_app(None, rates=HIGH_LIMIT)
    if variant in ("slowapi_memory", "slowapi_redis"):
        from slowapi import Limiter
        from slowapi.middleware import SlowAPIASGIMiddleware
        from slowapi.util import get_remote_address

        app = starlette_app()
        app.state.limiter = Limiter(
            key_func=get_remote_address,
            default_limits=[HIGH_LIMITS],
            storage_uri=redis_url if variant == "slowapi_redis" else "memory://",
            strategy="sliding-window-counter",
        )
        app.add_middleware(SlowAPIASGIMiddleware)
        return cast(ASGIApp, app)
    raise SystemExit(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def serve(variant: str, port: int, redis_url: str | None) -> None:
    """Serve one variant with uvicorn until terminated (the subprocess side)."""
    import uvicorn

    app = make_app(variant, redis_url)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run()


# --- through a real server -------------------------------------------------------------


@contextlib.contextmanager
def servers(redis_url: str, cpus: set[int] | None) -> Iterator[dict[str, tuple[int, int]]]:
    """Start one uvicorn subprocess per variant (pinned to `cpus`); stop them all after.

    Yields ``{variant: (port, pid)}``.
    """
    procs: list[subprocess.Popen[bytes]] = []
    found: dict[str, tuple[int, int]] = {}
    try:
        for variant in VARIANTS:
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", variant, "--port", str(port)]
            cmd += ["--redis", redis_url]
            procs.append(start_server_process(cmd, port, PATHS, cpus=cpus))
            found[variant] = (port, procs[-1].pid)
        yield found
    finally:
        for proc in procs:
            stop_process(proc)


def wrk_script(directory: Path) -> Path:
    """A wrk Lua script sending the three paths in rotation."""
    script = directory / "paths.lua"
    items = ", ".join(f'"{p}"' for p in PATHS)
    script.write_text(
        f"local paths = {{{items}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )
    return script


def measure_servers(
    redis_url: str, *, rounds: int, seconds: float, split: tuple[set[int], set[int]] | None
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, int], dict[str, float]]:
    """Median requests/s per variant over alternating wrk runs; every sample; non-2xx.

    Also the median server CPU time per request in microseconds (from ``/proc``): unlike
    requests/s it hardly moves when other processes compete for the machine. With
    `split`, the servers run on its first CPU set and wrk on the second.
    """
    server_cpus, load_cpus = split if split else (None, None)
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    bad: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    with tempfile.TemporaryDirectory() as tmp, servers(redis_url, server_cpus) as found:
        script = wrk_script(Path(tmp))

        def load(variant: str, secs: float) -> None:
            port, pid = found[variant]
            before = cpu_seconds(pid)
            result = run_wrk(
                port, script, seconds=secs, connections=WRK_CONNECTIONS, cpus=load_cpus
            )
            after = cpu_seconds(pid)
            samples[variant].append(result.rps)
            if before is not None and after is not None and result.requests:
                cpu[variant].append((after - before) * 1e6 / result.requests)
            bad[variant] += result.non_2xx + result.errors

        for variant in VARIANTS:  # warm up: connections, caches, the first script load
            load(variant, 1.0)
        for sample in (*samples.values(), *cpu.values()):
            sample.clear()
        for r in range(rounds):
            for variant in VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]:
                load(variant, seconds)
            line = "  ".join(f"{v} {samples[v][-1]:,.0f}" for v in VARIANTS)
            print(f"  round {r + 1}/{rounds}: {line}", flush=True)
    cpu_us = {v: statistics.median(c) for v, c in cpu.items() if c}
    return {v: statistics.median(s) for v, s in samples.items()}, samples, bad, cpu_us


# --- in process ---------------------------------------------------------------------


async def _noop(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _enter_leave(guard: Guard) -> ASGIApp:
    """An ASGI-shaped callable doing only ``aenter`` + ``aleave`` for one route."""
    request = guard.request("GET", "/ping", {}, "127.0.0.1", "/ping")

    async def call(scope: dict[str, Any], receive: Any, send: Any) -> None:
        admitted = await guard.aenter(request)
        await guard.aleave(admitted, 200)

    return call


_TEMPLATES = dict(
    zip(PATHS, ("/ping", "/archive/{slug}", "/v1/emails/{id}/analytics"), strict=True)
)


def measure_in_process(redis_url: str, *, number: int, repeat: int) -> dict[str, float]:
    """Microseconds per request of each in-process form (best repeat), and the deltas.

    ``part_*_us`` is what removing one part of the stack saves: its cost in place.
    """
    forms: dict[str, ASGIApp] = {
        "bare": make_app("bare"),
        "memory": make_app("memory"),
        "memory_one_limit": make_app("memory_one_limit"),
        "slowapi_memory": make_app("slowapi_memory"),
        "noop": _noop,
        "noop_guarded": GuardMiddleware(_noop, guarded_app(None).guard),
        "enter_leave": _enter_leave(guarded_app(None).guard),
        "no_limits": guarded_app(None, limits=False),
        "no_breaker": guarded_app(None, breaker=False),
        "no_bulkhead": guarded_app(None, bulkhead=False),
        "no_template_lookup": guarded_app(None, template=lambda s: _TEMPLATES.get(s["path"])),
        "empty_policy": guarded_app(None, limits=False, breaker=False, bulkhead=False),
    }
    timings = asyncio.run(asgi_per_request(forms, PATHS, number=number, repeat=repeat))
    # Redis costs a round trip per request: fewer calls, timed against the bare app again.
    slow = {"bare": forms["bare"], "redis": make_app("redis", redis_url)}
    redis_timings = asyncio.run(
        asgi_per_request(slow, PATHS, number=max(200, number // 10), repeat=repeat)
    )
    us = {name: t.best / 1000 for name, t in timings.items()}
    full = us["memory"]
    return {
        "bare_app_us": us["bare"],
        "stack_us": full - us["bare"],
        "stack_one_limit_us": us["memory_one_limit"] - us["bare"],
        "stack_noop_us": us["noop_guarded"] - us["noop"],
        "enter_leave_us": us["enter_leave"],
        "stack_redis_us": (redis_timings["redis"].best - redis_timings["bare"].best) / 1000,
        "slowapi_stack_us": us["slowapi_memory"] - us["bare"],
        "part_limits_us": full - us["no_limits"],
        "part_breaker_us": full - us["no_breaker"],
        "part_bulkhead_us": full - us["no_bulkhead"],
        "part_template_lookup_us": full - us["no_template_lookup"],
        "part_middleware_us": us["empty_policy"] - us["bare"],
    }


# --- report --------------------------------------------------------------------------


_IN_PROCESS_ROWS = (
    ("stack_us", "GuardMiddleware + app, minus the app (stack_us)"),
    ("stack_one_limit_us", "the same with one rate in the baseline"),
    ("stack_noop_us", "GuardMiddleware around a no-op app"),
    ("enter_leave_us", "guard.aenter + guard.aleave alone"),
    ("stack_redis_us", "GuardMiddleware on Redis, minus the app"),
    ("slowapi_stack_us", "slowapi (memory), minus the app"),
    ("part_limits_us", "  of stack_us: the two rate limits"),
    ("part_breaker_us", "  of stack_us: the breaker"),
    ("part_bulkhead_us", "  of stack_us: the bulkhead"),
    ("part_template_lookup_us", "  of stack_us: the Starlette route lookup"),
    ("part_middleware_us", "  of stack_us: the middleware with nothing to do"),
)


def _ratio(values: dict[str, float], top: str, bottom: str) -> float | None:
    if top not in values or bottom not in values:
        return None
    return round(values[top] / values[bottom], 3)


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Run everything and print the report; return the JSON figures."""
    rounds, seconds = (2, 2.0) if args.quick else (args.rounds, args.seconds)
    number, repeat = (2000, 3) if args.quick else (10_000, 5)
    split = cpu_split()
    pinning = (
        f"servers on CPUs {sorted(split[0])}, wrk and redis on {sorted(split[1])}"
        if split
        else "no CPU pinning"
    )
    print(
        f"sendguard middleware benchmark: python {platform.python_version()}, "
        f"starlette {version('starlette')}, uvicorn {version('uvicorn')} (one worker), "
        f"slowapi {version('slowapi')}, limits {version('limits')}; wrk 1 thread x "
        f"{WRK_CONNECTIONS} connections, {rounds} rounds x {seconds:g} s; "
        f"{pinning}",
        flush=True,
    )
    started = time.perf_counter()
    with RedisServer() as redis_server:
        if split and redis_server.pid is not None:
            os.sched_setaffinity(redis_server.pid, split[1])
        rps, samples, bad, cpu_us = measure_servers(
            redis_server.url, rounds=rounds, seconds=seconds, split=split
        )
        inproc = measure_in_process(redis_server.url, number=number, repeat=repeat)
    figures: dict[str, Any] = {
        "bare_rps": round(rps["bare"], 1),
        "memory_rps": round(rps["memory"], 1),
        "redis_rps": round(rps["redis"], 1),
        "slowapi_memory_rps": round(rps["slowapi_memory"], 1),
        "slowapi_redis_rps": round(rps["slowapi_redis"], 1),
        "memory_ratio": round(rps["memory"] / rps["bare"], 3),
        "memory_one_limit_ratio": round(rps["memory_one_limit"] / rps["bare"], 3),
        "redis_ratio": round(rps["redis"] / rps["bare"], 3),
        "slowapi_memory_ratio": round(rps["slowapi_memory"] / rps["bare"], 3),
        "slowapi_redis_ratio": round(rps["slowapi_redis"] / rps["bare"], 3),
        "redis_vs_slowapi": round(rps["redis"] / rps["slowapi_redis"], 3),
        **{k: round(v, 2) for k, v in inproc.items()},
        "server_cpu_us": {v: round(c, 1) for v, c in cpu_us.items()},
        "memory_cpu_ratio": _ratio(cpu_us, "bare", "memory"),
        "redis_cpu_ratio": _ratio(cpu_us, "bare", "redis"),
        "non_2xx": bad,
        "rounds": rounds,
        "seconds_per_run": seconds,
    }
    met = {
        "memory_ratio": figures["memory_ratio"] >= TARGETS["memory_ratio"],
        "redis_vs_slowapi": figures["redis_vs_slowapi"] >= TARGETS["redis_vs_slowapi"],
        "no_refusals": not any(bad.values()),
    }
    figures["targets_met"] = met
    print("\nthrough uvicorn + wrk (medians; requests/s of every run in order):")
    for v in VARIANTS:
        each = ", ".join(f"{s:,.0f}" for s in samples[v])
        used = f"{cpu_us[v]:6.1f} us" if v in cpu_us else "   n/a"
        print(
            f"  {v:<15} {rps[v]:>7,.0f} rps  x{rps[v] / rps['bare']:.3f} of bare  "
            f"server CPU {used}/req  non-2xx {bad[v]}  [{each}]"
        )
    print("\nin process (direct ASGI calls, microseconds per request, best repeat):")
    print(f"  {'the bare Starlette app itself':<50} {inproc['bare_app_us']:7.2f}")
    for key, label in _IN_PROCESS_ROWS:
        print(f"  {label:<50} {inproc[key]:7.2f}")
    print("\ntargets:")
    for key, label in (
        ("memory_ratio", "memory_rps / bare_rps"),
        ("redis_vs_slowapi", "redis_rps / slowapi_redis_rps"),
    ):
        verdict = "met" if met[key] else "MISSED"
        print(f"  {label:<31} {figures[key]:.3f} >= {TARGETS[key]}: {verdict}")
    if args.profile or not all(met.values()):
        print("\nwhere sendguard's in-process time goes (memory variant, cProfile, own time):")
        memory = make_app("memory")
        print(asyncio.run(profile_async(memory, PATHS, number=number, only="sendguard")))
    print(f"took {time.perf_counter() - started:.0f} s")
    return figures


INSTRUCTION_VARIANTS = ("bare", "memory", "memory_one_limit", "slowapi_memory")


def count_instructions() -> dict[str, Any]:
    """Instructions per request of each in-process variant's server, and ÷ bare."""
    if not callgrind_available():
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    print("instructions per request under callgrind (1,500 requests after 400 uncounted):")
    counts: dict[str, float] = {}
    for variant in INSTRUCTION_VARIANTS:
        port = free_port()
        cmd = [sys.executable, __file__, "--serve", variant, "--port", str(port)]
        counts[variant] = instructions_per_request(cmd, port, PATHS)
        ratio = counts["bare"] / counts[variant]
        print(f"  {variant:<17} {counts[variant]:>11,.0f}  bare/this {ratio:.3f}", flush=True)
    return {
        "instructions_per_request": {v: round(c) for v, c in counts.items()},
        **{f"{v}_instruction_ratio": round(counts["bare"] / counts[v], 3) for v in counts},
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: the benchmark, or (``--serve``) one server variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--profile", action="store_true", help="always print the profile")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per request (valgrind)"
    )
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.redis)
        return 0
    if args.instructions:
        emit_json(count_instructions())
        return 0
    figures = report(args)
    emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
