"""Shared helpers for the benchmarks: interleaved ns/call timing and Redis round-trip counting.

Nothing here runs on import. The benchmarks are scripts (``python benchmarks/<name>.py``),
never part of the test suite.
"""

from __future__ import annotations

import cProfile
import gc
import http.client
import io
import json
import os
import pstats
import re
import statistics
import subprocess
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

__all__ = [
    "ASGIApp",
    "CountingConnection",
    "Measured",
    "RoundTrips",
    "Timing",
    "WrkResult",
    "asgi_per_request",
    "command_counts",
    "counting_client",
    "cpu_seconds",
    "cpu_split",
    "emit_json",
    "http_scope",
    "pin_cpus",
    "profile_async",
    "run_python_measured",
    "run_wrk",
    "start_server_process",
    "stop_process",
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


# --- web benchmarks: servers in subprocesses, wrk, in-process ASGI timing ------------------

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
"""Any ASGI application (kept loose: frameworks type their scopes differently)."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one `wrk` run measured."""

    rps: float
    requests: int
    non_2xx: int
    errors: int
    """Socket errors of every kind (connect, read, write, timeout)."""


def pin_cpus(cpus: set[int] | None) -> Callable[[], None] | None:
    """A `preexec_fn` that pins a child process to `cpus` (None: no pinning)."""
    if cpus is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def cpu_split() -> tuple[set[int], set[int]] | None:
    """Two disjoint CPU sets (server, load generator) if this process may use 2+ CPUs."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def run_wrk(
    port: int,
    script: Path | None,
    *,
    seconds: float,
    connections: int,
    path: str = "/",
    cpus: set[int] | None = None,
) -> WrkResult:
    """Load 127.0.0.1:`port` with ``wrk`` (one thread) for `seconds` (whole seconds, >= 1).

    `cpus` pins wrk to those CPUs, so it does not compete with the server for its own.
    """
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, check=False,
        preexec_fn=pin_cpus(cpus),
    )  # fmt: skip
    out = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if done.returncode != 0 or rps is None or total is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {' '.join(cmd)}\n{out}{done.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        float(rps.group(1)),
        int(total.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )


def _answers(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False


def start_server_process(
    cmd: Sequence[str],
    port: int,
    paths: Sequence[str],
    *,
    timeout: float = 20.0,
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server subprocess and wait until every one of `paths` answers 200.

    Its output goes to a temporary file, shown if it fails to start (it is then stopped).
    `cpus` pins the process to those CPUs.
    """
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=pin_cpus(cpus),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if all(_answers(port, p) for p in paths):
                return proc
            time.sleep(0.05)
        stop_process(proc)
        log.seek(0)
        output = log.read().decode(errors="replace")[-3000:]
    raise RuntimeError(f"server did not answer on port {port}: {' '.join(cmd)}\n{output}")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM `proc`, SIGKILL after 5 s; wait for it either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def http_scope(path: str) -> dict[str, Any]:
    """A minimal ASGI HTTP scope for ``GET path`` from 127.0.0.1."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": b"", "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


async def _drive(app: ASGIApp, scopes: Sequence[dict[str, Any]], number: int) -> int:
    """Call `app` `number` times, the scopes in rotation; return ns taken (gc off)."""
    n = len(scopes)
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for i in range(number):
            await app(dict(scopes[i % n]), _receive, _send)
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


async def asgi_per_request(
    apps: Mapping[str, ASGIApp], paths: Sequence[str], *, number: int, repeat: int
) -> dict[str, Timing]:
    """Nanoseconds per request of each ASGI app called directly, `paths` in rotation.

    Interleaved like `time_per_call`: every repeat runs every app once, after a warm-up.
    """
    scopes = [http_scope(p) for p in paths]
    for app in apps.values():
        await _drive(app, scopes, min(number, 1000))
    samples: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(repeat):
        for name, app in apps.items():
            samples[name].append(await _drive(app, scopes, number) / number)
    return {n: Timing(min(s), statistics.median(s)) for n, s in samples.items()}


async def profile_async(
    app: ASGIApp, paths: Sequence[str], *, number: int, top: int = 25, only: str | None = None
) -> str:
    """cProfile of `number` direct calls of `app`: the top functions by own time.

    `only` (a regular expression on file paths) lists just the functions it matches.
    """
    scopes = [http_scope(p) for p in paths]
    n = len(scopes)
    for i in range(min(number, 1000)):
        await app(dict(scopes[i % n]), _receive, _send)
    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(number):
        await app(dict(scopes[i % n]), _receive, _send)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime")
    if only is None:
        stats.print_stats(top)
    else:
        stats.print_stats(only, top)
    return out.getvalue()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process `pid` has used so far; None without ``/proc``."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- child processes measured: wall time and peak RSS ---------------------------------------

_PEAK_RSS_PRELUDE = """\
import atexit as _atexit, sys as _sys
def _report_peak_rss():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"__peak_rss_kib__ {peak}", file=_sys.stderr, flush=True)
_atexit.register(_report_peak_rss)
"""


@dataclass(frozen=True, slots=True)
class Measured:
    """What one child process printed, how long it ran and its peak resident memory."""

    stdout: str
    seconds: float
    peak_rss_mb: float


def run_python_measured(
    code: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600.0
) -> Measured:
    """Run ``python -c code args...``; its peak RSS is its own ``VmHWM`` (Linux), reported
    by the child itself at exit.

    Not ``wait4``'s ``ru_maxrss``: Linux carries the parent's high-water mark across fork
    and exec, so a child of a large benchmark process would report the parent's peak.
    """
    import sys  # (appended helper: keeps the module's header untouched)

    cmd = [sys.executable, "-c", _PEAK_RSS_PRELUDE + code, *args]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(env) if env else None,
                          timeout=timeout, check=False)  # fmt: skip
    seconds = time.perf_counter() - start
    found = re.search(r"__peak_rss_kib__ (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return Measured(done.stdout, seconds, int(found.group(1)) / 1024)
