"""The application's psycopg_pool, an HTTP endpoint, and the traffic floor."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool, PoolTimeout

from sendguard import ConfigError
from sendguard.health import (
    HttpProbe,
    PoolProbe,
    Status,
    Thresholds,
    TrafficCounter,
    TrafficFloorProbe,
    run_probe,
)
from sendguard.testing import FakeClock
from sendguard.testing.servers import free_port


@pytest.mark.postgres
def test_pool_probe_sees_waiting_requests_and_timeouts(postgres_dsn) -> None:
    with ConnectionPool(postgres_dsn, min_size=1, max_size=1, timeout=0.2, name="app") as pool:
        probe = PoolProbe(pool, metrics=False)
        assert run_probe(probe).status is Status.PASS
        with pool.connection(), pytest.raises(PoolTimeout):
            pool.getconn()  # the only connection is taken: this request times out
        result = run_probe(probe)
    assert result.status is Status.WARN
    assert result.details["requests_errors"] == 1
    assert "1 requests failed to get a connection" in result.message
    assert probe.name == "pool/app"


class FakePool:
    name = "fake"

    def __init__(self) -> None:
        self.stats = {"pool_min": 2, "pool_max": 10, "pool_size": 6, "pool_available": 1,
                      "requests_waiting": 3, "requests_queued": 0, "requests_wait_ms": 0,
                      "requests_errors": 0}  # fmt: skip

    def get_stats(self) -> dict[str, int]:
        return dict(self.stats)


def test_pool_probe_judges_average_wait_between_checks() -> None:
    pool = FakePool()
    probe = PoolProbe(pool, waiting=Thresholds.above(warn=5), metrics=False)
    assert run_probe(probe).status is Status.PASS  # 3 waiting < 5
    pool.stats.update(requests_queued=4, requests_wait_ms=6000)
    result = run_probe(probe)
    assert result.status is Status.FAIL  # 1500 ms average >= 1000
    assert result.details["average_wait_ms"] == 1500.0


POOL_METRICS = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
from sendguard.health import instrument_pool
from tests.health.test_pool_http_traffic import FakePool
pool = FakePool()
instrument_pool(pool)
points = []
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            for p in m.data.data_points:
                points.append([m.name, m.unit, dict(p.attributes), p.value])
print(json.dumps(points))
"""


def test_pool_is_published_as_db_client_connection_metrics() -> None:
    out = subprocess.run([sys.executable, "-W", "error", "-c", POOL_METRICS], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    points = {(p[0], p[2].get("db.client.connection.state")): (p[1], p[3])
              for p in json.loads(out.stdout)}  # fmt: skip
    assert points == {
        ("db.client.connection.count", "idle"): ("{connection}", 1),
        ("db.client.connection.count", "used"): ("{connection}", 5),
        ("db.client.connection.max", None): ("{connection}", 10),
        ("db.client.connection.idle.min", None): ("{connection}", 2),
        ("db.client.connection.pending_requests", None): ("{request}", 3),
        ("db.client.connection.timeouts", None): ("{timeout}", 0),
    }
    assert all(p[2]["db.client.connection.pool.name"] == "fake" for p in json.loads(out.stdout))


@pytest.fixture
def web() -> Iterator[tuple[int, dict[str, int]]]:
    answer = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answer["status"])
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], answer
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_http_probe_judges_status_and_latency(web) -> None:
    port, answer = web
    probe = HttpProbe(f"http://127.0.0.1:{port}/t/abc?x=1", timeout=2)
    result = run_probe(probe)
    assert (result.status, result.details["status_code"], result.observed_unit) == (
        Status.PASS, 200, "ms",
    )  # fmt: skip
    answer["status"] = 502
    result = run_probe(probe)
    assert result.status is Status.FAIL
    assert result.message == f"http://127.0.0.1:{port}/t/abc?x=1 answered 502"


def test_http_probe_unreachable() -> None:
    result = run_probe(HttpProbe(f"http://127.0.0.1:{free_port()}/", timeout=0.5))
    assert result.status is Status.FAIL
    assert "did not answer: ConnectionRefusedError" in result.message
    with pytest.raises(ConfigError, match="http\\(s\\) URL"):
        HttpProbe("ftp://example.com")


def test_traffic_floor_waits_a_window_then_fails_below_the_floor() -> None:
    clock = FakeClock()
    counter = TrafficCounter(60, buckets=6, clock=clock)
    probe = TrafficFloorProbe(counter, minimum=10, warn=30)
    for _ in range(5):
        counter.record()
    assert run_probe(probe).message == "warming up: not a whole window counted yet"
    clock.advance(30)
    counter.record(40)
    clock.advance(30)
    result = run_probe(probe)
    assert (result.status, result.observed_value) == (Status.PASS, 40)  # the first 5 slid out
    clock.advance(30)
    counter.record(12)
    clock.advance(29)
    assert run_probe(probe).status is Status.WARN
    clock.advance(31)
    result = run_probe(probe)
    assert result.status is Status.FAIL
    assert result.message == "only 0 in the last 60s, below the floor of 10"


def test_traffic_floor_from_a_function_and_validation() -> None:
    probe = TrafficFloorProbe(lambda: 3.0, minimum=5, name="sends")
    assert run_probe(probe).message == "only 3, below the floor of 5"
    with pytest.raises(ConfigError, match="must not be below minimum"):
        TrafficFloorProbe(lambda: 1.0, minimum=5, warn=2)
