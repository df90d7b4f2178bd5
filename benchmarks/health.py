"""Health readiness: answered from memory, no database load per request, fast detection.

    .venv/bin/python benchmarks/health.py            # full run (~1 min)
    .venv/bin/python benchmarks/health.py --quick    # shorter wrk runs, for a smoke test

Set-up: a throwaway Postgres (`sendguard.testing.servers.PostgresServer`, 40 connections,
3 reserved) with an application role; a `HealthRegistry` holding a fresh-connection
`PostgresProbe` (the application's role) and a `SaturationProbe` over a reserved admin
connection, refreshed every `REFRESH` seconds in the background; one ASGI app,
`sendguard.health.asgi_app(registry, ping)`, served by uvicorn on 127.0.0.1, answering
``/readyz`` (the health+json report) and ``/ping`` (a bare 200 from the same app).

What is measured:

1. ``readyz_rps_ratio``: `wrk` (1 thread, 32 connections) against ``/ping`` and
   ``/readyz`` on the same server, interleaved (the order alternating from one repeat to
   the next), best of the repeats each; readiness
   requests per second / ping requests per second (target >= 0.9). With two CPUs or
   more, the app (this process) and wrk are pinned to CPUs of their own (Postgres,
   started before, may use any); runs on a shared CPU vary by +-15 %.
2. ``db_queries_per_readyz``: transactions the whole cluster committed or rolled back
   during the ``/readyz`` runs (``pg_stat_database``, summed over databases, read before
   and after from fresh connections, after a pause so backends flush their counters),
   divided by the readiness requests served. Everything counts, the background probes
   and the two reads included, so it is an upper bound (target <= 0.01).
3. ``probe_pg_ms``: one fresh-connection probe (connect as the app role, ``SELECT 1``,
   close), median of 20.
4. ``detect_exhaustion_s``: the application role's connections fill every ordinary slot;
   from the refusal of the last one to the first HTTP 503 from ``/readyz`` (polled every
   10 ms over HTTP). Target <= 2 x ``refresh_interval_s``.

The last stdout line is one JSON object with those keys, the raw figures, the targets
and ``targets_met``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
import uvicorn

from benchmarks._util import WrkResult, cpu_split, emit_json, run_wrk
from sendguard.health import (
    AdminConnection,
    HealthRegistry,
    PostgresProbe,
    SaturationProbe,
    SessionFilter,
    Status,
    asgi_app,
    kill_sessions,
)
from sendguard.testing.servers import PostgresServer, free_port

REFRESH = 1.0
TARGETS = {"readyz_rps_ratio": 0.9, "db_queries_per_readyz": 0.01,
           "detect_exhaustion_s": 2 * REFRESH}  # fmt: skip
XACTS = "SELECT sum(xact_commit + xact_rollback)::bigint FROM pg_stat_database"


async def ping(scope: Any, receive: Any, send: Any) -> None:
    """A bare 200 from the same app: the ceiling readiness is compared with."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"4")],
        }
    )
    await send({"type": "http.response.body", "body": b"pong"})  # fmt: skip


def transactions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(XACTS).fetchone()
    assert row is not None
    return int(row[0])


def serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                            access_log=False, lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, thread


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as answer:
        answer.close()
        return int(answer.code)


def wait_until(condition: Any, timeout: float, step: float = 0.01) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise RuntimeError("condition not met in time")
        time.sleep(step)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter wrk runs")
    args = parser.parse_args(argv)
    duration, repeats = (2, 2) if args.quick else (3, 8)
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    with PostgresServer(max_connections=40, superuser_reserved_connections=3) as pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE ROLE app LOGIN")
        app_dsn = pg.dsn.replace("sendguard@", "app@")
        admin = AdminConnection(pg.dsn)
        admin.connect()
        probe = PostgresProbe(app_dsn)
        registry = HealthRegistry(
            [probe, SaturationProbe(admin, role="app")], interval=REFRESH, hooks=[]
        )
        port = free_port()
        server, thread = serve(asgi_app(registry, ping), port)
        base = f"http://127.0.0.1:{port}"
        held: list[psycopg.Connection[Any]] = []
        try:
            registry.start()
            wait_until(lambda: registry.readiness().status is Status.PASS, 10)
            probe_ms = statistics.median(
                float(probe.check().observed_value or 0) for _ in range(20)
            )
            print(f"fresh-connection probe: {probe_ms:.2f} ms (median of 20)")

            split = cpu_split()
            wrk_cpus = None
            if split is not None:  # the app (this process) and wrk each on their own CPUs
                os.sched_setaffinity(0, split[0])
                wrk_cpus = split[1]

            def load(path: str, seconds: int) -> WrkResult:
                return run_wrk(port, None, seconds=seconds, connections=32, path=path,
                               cpus=wrk_cpus)  # fmt: skip

            load("/ping", 2)  # warm up both paths
            load("/readyz", 2)
            ping_rps, ready_rps, ready_requests = [], [], 0
            time.sleep(1.5)
            before = transactions(pg.dsn)
            for repeat in range(repeats):
                for path in ("/ping", "/readyz") if repeat % 2 == 0 else ("/readyz", "/ping"):
                    run = load(path, duration)
                    if path == "/ping":
                        ping_rps.append(run.rps)
                        continue
                    ready_rps.append(run.rps)
                    ready_requests += run.requests
                    if run.non_2xx:
                        raise RuntimeError(f"/readyz answered {run.non_2xx} non-2xx under load")
            time.sleep(1.5)  # let the backends flush their statistics
            xacts = transactions(pg.dsn) - before
            ping_best, ready_best = max(ping_rps), max(ready_rps)
            ratio = ready_best / ping_best
            per_request = xacts / ready_requests
            print(f"/ping {ping_best:,.0f} req/s, /readyz {ready_best:,.0f} req/s "
                  f"(best of {repeats} x {duration}s): ratio {ratio:.3f}")  # fmt: skip
            print(f"database transactions during {ready_requests:,} readiness requests: {xacts} "
                  f"({per_request:.6f} per request)")  # fmt: skip

            assert http_status(f"{base}/readyz") == 200
            with contextlib.suppress(psycopg.OperationalError):
                while len(held) < 1000:
                    held.append(psycopg.connect(app_dsn, application_name="leak"))
            detect = wait_until(lambda: http_status(f"{base}/readyz") == 503, 10)
            print(
                f"{len(held)} connections filled the ordinary slots; /readyz answered 503 "
                f"{detect:.2f}s after the last one was refused (refresh {REFRESH:g}s)"
            )
            kill_sessions(admin, SessionFilter(applications=["leak"]), execute=True, grace=0.2)
            recovered = wait_until(lambda: http_status(f"{base}/readyz") == 200, 10)
            print(f"after db kill, /readyz answered 200 again in {recovered:.2f}s")
        finally:
            for conn in held:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            registry.close()
            admin.close()
            server.should_exit = True
            thread.join(10)

    result = {
        "readyz_rps_ratio": round(ratio, 4),
        "db_queries_per_readyz": round(per_request, 6),
        "probe_pg_ms": round(probe_ms, 3),
        "refresh_interval_s": REFRESH,
        "detect_exhaustion_s": round(detect, 3),
        "readyz_rps": round(ready_best, 1),
        "ping_rps": round(ping_best, 1),
        "readyz_requests": ready_requests,
        "db_transactions_during_readyz_load": xacts,
        "recover_after_db_kill_s": round(recovered, 3),
        "postgres": pg.version,
        "python": platform.python_version(),
        "targets": {"readyz_rps_ratio": ">= 0.9", "db_queries_per_readyz": "<= 0.01",
                    "detect_exhaustion_s": f"<= {TARGETS['detect_exhaustion_s']:g}"},
    }  # fmt: skip
    met = {
        "readyz_rps_ratio": ratio >= TARGETS["readyz_rps_ratio"],
        "db_queries_per_readyz": per_request <= TARGETS["db_queries_per_readyz"],
        "detect_exhaustion_s": detect <= TARGETS["detect_exhaustion_s"],
    }
    result["targets_met"] = met
    result["all_targets_met"] = all(met.values())
    emit_json(result)
    return 0 if all(met.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
