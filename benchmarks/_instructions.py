"""Instructions per request of a server, counted by valgrind's callgrind.

Requests per second move by a few per cent between runs on a shared machine. The number
of instructions a server executes per request moves by about one per cent, so it shows
changes of a point or two that timing cannot. The server runs under callgrind with
instrumentation off; it is warmed up, counting is switched on with ``callgrind_control``
for a fixed number of requests (a few keep-alive connections, paths in rotation), then
switched off. The total is divided by the number of requests.

Needs ``valgrind`` (Debian package) on PATH; the server runs about 50 times slower under
it, so counts use a small number of requests.
"""

from __future__ import annotations

import http.client
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from benchmarks._util import start_server_process

__all__ = ["callgrind_available", "instructions_per_request", "load_exactly"]


def callgrind_available() -> bool:
    """True when valgrind and callgrind_control are on PATH."""
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def load_exactly(port: int, paths: Sequence[str], requests: int, connections: int = 4) -> None:
    """Send exactly `requests` GETs (rounded down to a multiple of `connections`) over
    `connections` keep-alive connections, the paths in rotation; every answer must be 200."""
    failures: list[str] = []

    def one_connection(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for i in range(requests // connections):
                conn.request("GET", paths[(i + offset) % len(paths)])
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(f"{paths[(i + offset) % len(paths)]}: {response.status}")
        except OSError as error:
            failures.append(str(error))
        finally:
            conn.close()

    threads = [threading.Thread(target=one_connection, args=(k,)) for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, the first: {failures[0]}")


def _instrument(pid: int, on: bool) -> None:
    subprocess.run(
        ["callgrind_control", "-i", "on" if on else "off", str(pid)],
        check=True,
        capture_output=True,
    )


def instructions_per_request(
    cmd: Sequence[str],
    port: int,
    paths: Sequence[str],
    *,
    requests: int = 1500,
    warmup: int = 400,
    startup_timeout: float = 300.0,
) -> float:
    """Instructions the server started by `cmd` (listening on `port`) executes per
    request, counted over `requests` requests after `warmup` uncounted ones."""
    requests -= requests % 4
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        proc = start_server_process(
            [*valgrind, f"--callgrind-out-file={out}", *cmd],
            port,
            paths,
            timeout=startup_timeout,
        )
        try:
            load_exactly(port, paths, warmup)
            _instrument(proc.pid, True)
            load_exactly(port, paths, requests)
            _instrument(proc.pid, False)
        finally:
            proc.terminate()  # callgrind writes its counts when the server exits
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        found = re.search(r"^totals:\s+(\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"callgrind wrote no totals for {' '.join(cmd)}")
        return int(found.group(1)) / requests
