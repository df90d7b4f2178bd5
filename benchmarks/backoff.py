"""Retries side by side: sendguard.backoff vs tenacity vs stamina, in one run.

    .venv/bin/python benchmarks/backoff.py            # full run (~half a minute)
    .venv/bin/python benchmarks/backoff.py --quick    # smaller run, for a smoke test

What is measured:

1. Overhead of a call that succeeds first time. Each decorated function is timed with
   `timeit` (gc off) in interleaved repeats together with the bare ``f()``; overhead =
   ns per decorated call - ns per bare call, from the best repeat (median shown too).
   Forms: sendguard ``@retry(RetryPolicy(), on=ConnectionError)``, tenacity
   ``@retry(stop=stop_after_attempt(3), wait=wait_random_exponential(0.5, max=20),
   retry=retry_if_exception_type(ConnectionError))`` and stamina
   ``@retry(on=ConnectionError, attempts=3)``: the same job, three attempts. The httpx
   transport's overhead over its inner `httpx.MockTransport` is shown too
   (``transport_success_ns``).
   Target: ``success_ns <= 0.2 * tenacity_success_ns``.
2. The simulation of the "Exponential Backoff and Jitter" study (AWS Architecture Blog,
   2015), rewritten here: 100 clients each update one row once under optimistic
   concurrency (read the version, write it back; a write with a stale version fails and
   the client backs off, then reads again). The network adds |N(10 ms, 2 ms)| per
   message; backoff base 5 ms, cap 2 s, as in the study. For no jitter, full, equal and
   decorrelated jitter (sendguard's `backoff_delay`): writes the row received
   (``calls_*``) and time until the last client is done (``time_*``, ms), mean of the
   runs. Target: ``calls_full <= 0.6 * calls_none``.
3. Amplification in a total outage, against a real uvicorn server on a loopback port
   that answers every request with 503: requests the server received / requests the
   callers made, through sendguard's `RetryTransport` (3 attempts, default budget) and
   through tenacity's ``stop_after_attempt(3)`` around the same httpx client (both with
   millisecond waits, so the run is short; waits do not change the counts).
   Targets: ``amplification_budget <= 1.2`` (tenacity: 3).

The last stdout line is one JSON object; ``targets_met`` maps each target to a bool.
"""

from __future__ import annotations

import argparse
import heapq
import platform
import random
import socket
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import stamina
import tenacity
import uvicorn

from benchmarks._util import Timing, emit_json, time_per_call
from sendguard.backoff import Jitter, RetryPolicy, RetryTransport, backoff_delay, retry


@dataclass(frozen=True, slots=True)
class Config:
    number: int  # calls per timing repeat
    repeat: int  # timing repeats
    occ_runs: int  # simulation runs per jitter
    outage_calls: int  # calls made during the outage, per client library


FULL = Config(number=100_000, repeat=7, occ_runs=40, outage_calls=500)
QUICK = Config(number=10_000, repeat=3, occ_runs=8, outage_calls=150)
CLIENTS = 100
NET_MEAN, NET_SD = 10.0, 2.0  # ms per message
BASE, CAP = 5.0, 2000.0  # ms


def ok() -> int:
    return 1


# --- 1. overhead of a first-time success ---------------------------------------------------


def success_overhead(cfg: Config) -> dict[str, Timing]:
    """ns per call of each decorated form minus ns per bare call."""
    sendguard_ok = retry(RetryPolicy(), on=ConnectionError)(ok)
    tenacity_ok = tenacity.retry(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_random_exponential(multiplier=0.5, max=20),
        retry=tenacity.retry_if_exception_type(ConnectionError),
    )(ok)
    stamina_ok = stamina.retry(on=ConnectionError, attempts=3)(ok)
    stmts: dict[str, tuple[str, dict[str, Any]]] = {
        "direct": ("f()", {"f": ok}),
        "sendguard": ("g()", {"g": sendguard_ok}),
        "tenacity": ("g()", {"g": tenacity_ok}),
        "stamina": ("g()", {"g": stamina_ok}),
    }
    raw = time_per_call(stmts, number=cfg.number, repeat=cfg.repeat)
    return {"direct": raw["direct"]} | {
        name: t.minus(raw["direct"]) for name, t in raw.items() if name != "direct"
    }


def transport_overhead(cfg: Config) -> Timing:
    """ns per request through RetryTransport(MockTransport) minus through the MockTransport.

    The transports are called directly (no client around them), so the client's own
    cost, which is ten times larger, does not drown the difference in noise.
    """
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    wrapped = RetryTransport(mock)
    request = httpx.Request("GET", "http://api.example.com/v1/emails")
    raw = time_per_call(
        {
            "bare": ("t.handle_request(r)", {"t": mock, "r": request}),
            "wrapped": ("t.handle_request(r)", {"t": wrapped, "r": request}),
        },
        number=max(1000, cfg.number // 5),
        repeat=cfg.repeat,
    )
    return raw["wrapped"].minus(raw["bare"])


# --- 2. the "Exponential Backoff and Jitter" simulation --------------------------------------


def occ_run(jitter: Jitter, rng: random.Random) -> tuple[int, float]:
    """One run: (writes the row received, ms until the last client finished)."""
    version = 0
    writes = 0
    done_at = 0.0
    attempt = [0] * CLIENTS
    previous = [BASE] * CLIENTS
    queue: list[tuple[float, int, int, str, int]] = []  # (time, seq, client, kind, version)
    seq = 0

    def net() -> float:
        return abs(rng.normalvariate(NET_MEAN, NET_SD))

    def push(at: float, client: int, kind: str, seen: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(queue, (at, seq, client, kind, seen))

    for client in range(CLIENTS):
        push(net(), client, "read")
    while queue:
        now, _, client, kind, seen = heapq.heappop(queue)
        if kind == "read":  # at the server: reply with the version
            push(now + net(), client, "got_version", version)
        elif kind == "got_version":  # at the client: write it back
            push(now + net(), client, "write", seen)
        elif kind == "write":  # at the server: accept only the current version
            writes += 1
            accepted = seen == version
            if accepted:
                version += 1
            push(now + net(), client, "written" if accepted else "conflict")
        elif kind == "written":
            done_at = max(done_at, now)
        else:  # conflict: back off, then read again
            attempt[client] += 1
            delay = backoff_delay(
                jitter, attempt[client], previous[client], BASE, CAP, rng.random()
            )
            previous[client] = delay
            push(now + net() + delay, client, "read")
    return writes, done_at


def occ_simulation(cfg: Config) -> dict[str, tuple[float, float]]:
    """jitter name -> (mean writes, mean ms to finish) over `cfg.occ_runs` seeded runs."""
    found: dict[str, tuple[float, float]] = {}
    for jitter in Jitter:
        rng = random.Random(2015)
        runs = [occ_run(jitter, rng) for _ in range(cfg.occ_runs)]
        found[jitter.value] = (
            statistics.mean(w for w, _ in runs),
            statistics.mean(t for _, t in runs),
        )
    return found


# --- 3. amplification in a total outage --------------------------------------------------------


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread, for a ``with`` block.

    The listening socket is bound before the thread starts (with TCP_NODELAY, which the
    accepted connections inherit), so clients may connect at once. ``url`` is the base URL.
    """

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(512)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", ws="none", http="h11", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> ServedApp:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()


class Outage:
    """An ASGI app in total outage: every request gets a 503 (no Retry-After); counts them."""

    def __init__(self) -> None:
        self.received = 0
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        with self._lock:
            self.received += 1
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"down"})


def amplification(cfg: Config) -> dict[str, float]:
    """Requests received / requests made, for sendguard's budget and tenacity's 3 attempts."""
    found: dict[str, float] = {}
    tiny = RetryPolicy(attempts=3, base=0.001, cap=0.004)
    for name in ("budget", "tenacity"):
        outage = Outage()
        with ServedApp(outage) as server:
            if name == "budget":
                client = httpx.Client(transport=RetryTransport(policy=tiny), timeout=5)
                for n in range(cfg.outage_calls):
                    client.get(f"{server.url}/v1/emails/{n}")
            else:
                client = httpx.Client(timeout=5)
                retrying = tenacity.Retrying(
                    stop=tenacity.stop_after_attempt(3),
                    wait=tenacity.wait_random_exponential(multiplier=0.001, max=0.004),
                    retry=tenacity.retry_if_result(lambda r: r.status_code == 503),
                    retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
                )
                for n in range(cfg.outage_calls):
                    retrying(client.get, f"{server.url}/v1/emails/{n}")
            client.close()
        found[name] = outage.received / cfg.outage_calls
    return found


# --- report --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    cfg = QUICK if parser.parse_args(argv).quick else FULL
    began = time.perf_counter()
    py = platform.python_version()
    versions = {lib: version(lib) for lib in ("tenacity", "stamina", "httpx", "uvicorn")}
    print(f"sendguard backoff benchmark ({'quick' if cfg is QUICK else 'full'} run)")
    print(f"python {py} ({platform.python_implementation()}), "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))  # fmt: skip

    ns = success_overhead(cfg)
    http_ns = transport_overhead(cfg)
    print(f"\n1. Overhead of a call that succeeds first time ({cfg.number:,} calls x "
          f"{cfg.repeat} repeats, gc off; best / median of repeats)")  # fmt: skip
    print(f"   {'bare f() (baseline, total)':<40}{ns['direct'].best:9.1f} ns"
          f"{ns['direct'].median:10.1f} ns")  # fmt: skip
    for name, label in (
        ("sendguard", "sendguard @retry(RetryPolicy())"),
        ("tenacity", "tenacity @retry(3 attempts, jitter)"),
        ("stamina", "stamina @retry(attempts=3)"),
    ):
        print(f"   {label:<40}{ns[name].best:9.1f} ns{ns[name].median:10.1f} ns")
    print(f"   {'RetryTransport over MockTransport':<40}{http_ns.best:9.1f} ns"
          f"{http_ns.median:10.1f} ns")  # fmt: skip
    ratio = ns["sendguard"].best / ns["tenacity"].best
    print(f"   sendguard / tenacity = {ratio:.3f} (target <= 0.2)")

    occ = occ_simulation(cfg)
    study = f"{CLIENTS} clients, one row, optimistic concurrency"
    print(f"\n2. 'Exponential Backoff and Jitter': {study};")
    print(f"   base {BASE:g} ms, cap {CAP:g} ms; mean of {cfg.occ_runs} runs")
    print(f"   {'jitter':<14}{'calls':>10}{'time (ms)':>12}{'calls / none':>14}")
    for name, (calls, ms) in occ.items():
        print(f"   {name:<14}{calls:10.0f}{ms:12.0f}{calls / occ['none'][0]:14.2f}")
    print("   target: calls_full <= 0.6 x calls_none")

    amp = amplification(cfg)
    print(f"\n3. Total outage of a real uvicorn server (every answer 503): requests received / "
          f"requests made, {cfg.outage_calls} calls each")  # fmt: skip
    print(f"   sendguard RetryTransport, 3 attempts + budget  {amp['budget']:.3f}  (target <= 1.2)")
    print(f"   tenacity stop_after_attempt(3)                 {amp['tenacity']:.3f}")

    result: dict[str, Any] = {
        "success_ns": ns["sendguard"].best,
        "success_ns_median": ns["sendguard"].median,
        "tenacity_success_ns": ns["tenacity"].best,
        "tenacity_success_ns_median": ns["tenacity"].median,
        "stamina_success_ns": ns["stamina"].best,
        "stamina_success_ns_median": ns["stamina"].median,
        "transport_success_ns": http_ns.best,
        "baseline_call_ns": ns["direct"].best,
        "success_ratio": ratio,
    }
    for name, (calls, ms) in occ.items():
        result[f"calls_{name}"] = calls
        result[f"time_{name}"] = ms
    result["amplification_budget"] = amp["budget"]
    result["amplification_tenacity"] = amp["tenacity"]
    result["targets_met"] = {
        "success_ns <= 0.2 x tenacity_success_ns": ratio <= 0.2,
        "calls_full <= 0.6 x calls_none": result["calls_full"] <= 0.6 * result["calls_none"],
        "amplification_budget <= 1.2": amp["budget"] <= 1.2,
    }
    result |= {
        "quick": cfg is QUICK,
        "seconds": round(time.perf_counter() - began, 2),
        "python": py,
        **{f"{k}_version": v for k, v in versions.items()},
    }
    met = ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in result["targets_met"].items())
    print(f"\ntargets: {met}\nrun time {result['seconds']:.1f} s\n")
    emit_json(result)
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
