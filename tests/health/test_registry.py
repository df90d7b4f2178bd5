"""The registry: concurrent checks with per-probe timeouts, the cache, the refresher."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sendguard import ConfigError, Event
from sendguard.health import (
    FunctionProbe,
    HealthRegistry,
    ProbeChecked,
    ProbeResult,
    ProbeStatusChanged,
    Status,
    probe,
    run_probe,
)
from sendguard.testing import FakeClock


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll `condition` until true; return the seconds it took (fail after `timeout`)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event hanging probes wait on; set at teardown so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def hanging(release: threading.Event, name: str = "hangs", timeout: float = 0.3) -> FunctionProbe:
    calls: list[float] = []

    def check() -> bool:
        calls.append(time.monotonic())
        release.wait(30)
        return True

    made = FunctionProbe(check, name, timeout=timeout)
    made.calls = calls  # type: ignore[attr-defined]
    return made


def quick(name: str, status: Status = Status.PASS, critical: bool = True) -> FunctionProbe:
    return FunctionProbe(lambda: ProbeResult(status, f"{name} {status.value}"), name,
                         critical=critical)  # fmt: skip


def test_a_hanging_probe_fails_at_its_timeout_without_delaying_the_others(release) -> None:
    slow = hanging(release, timeout=0.3)
    registry = HealthRegistry([quick("a"), slow, quick("b")], hooks=[])
    started = time.monotonic()
    report = registry.check_now()
    took = time.monotonic() - started
    assert 0.3 <= took < 1.5
    assert report.check("hangs").status is Status.FAIL
    assert report.check("hangs").message == "timed out after 0.3s"
    for name in ("a", "b"):
        result = registry.result(name)
        assert result is not None and result.status is Status.PASS
        assert result.checked_at - started < 0.2  # recorded as soon as it answered
    assert report.status is Status.FAIL
    assert report.http_status == 503


def test_background_refresher_keeps_one_thread_on_a_hanging_probe(release) -> None:
    slow = hanging(release, timeout=0.1)
    with HealthRegistry([slow, quick("fast")], interval=0.1, hooks=[]) as registry:
        wait_for(lambda: registry.readiness().check("fast").status is Status.PASS)
        wait_for(lambda: "still running" in registry.readiness().check("hangs").message)
        assert registry.running
    assert len(slow.calls) == 1  # type: ignore[attr-defined]
    assert not registry.running


def test_refresher_picks_up_a_change_within_an_interval() -> None:
    state = {"status": Status.PASS}
    watched = FunctionProbe(lambda: ProbeResult(state["status"]), "flappy")
    with HealthRegistry([watched], interval=0.1, hooks=[]) as registry:
        wait_for(lambda: registry.readiness().status is Status.PASS)
        state["status"] = Status.FAIL
        took = wait_for(lambda: registry.readiness().status is Status.FAIL)
        assert took < 0.5
        state["status"] = Status.PASS
        wait_for(lambda: registry.readiness().status is Status.PASS)


def test_exceptions_and_odd_returns_become_failures() -> None:
    def broken() -> bool:
        raise ConnectionRefusedError("no one home")

    registry = HealthRegistry(
        [FunctionProbe(broken, "broken"), FunctionProbe(lambda: 42, "odd"),  # type: ignore[arg-type]
         FunctionProbe(lambda: False, "false"), FunctionProbe(lambda: None, "none")],
        hooks=[],
    )  # fmt: skip
    report = registry.check_now()
    assert report.check("broken").message == "ConnectionRefusedError: no one home"
    assert report.check("odd").message == "the check returned int, not a ProbeResult"
    assert report.check("false").message == "the check returned False"
    assert report.check("none").status is Status.PASS


def test_async_probes_are_cancelled_at_their_timeout() -> None:
    cancelled = threading.Event()

    @probe("async-slow", timeout=0.2)
    async def slow() -> bool:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return True

    @probe("async-fast")
    async def fast() -> ProbeResult:
        await asyncio.sleep(0)
        return ProbeResult.passing(observed_value=1, observed_unit="ms")

    registry = HealthRegistry([slow, fast], hooks=[])
    report = asyncio.run(registry.acheck_now())
    assert report.check("async-slow").message == "timed out after 0.2s"
    assert report.check("async-fast").status is Status.PASS
    assert cancelled.wait(2)


def test_results_go_stale_on_a_fake_clock() -> None:
    clock = FakeClock()
    registry = HealthRegistry([quick("db")], interval=5, clock=clock, hooks=[])
    assert registry.check_now().status is Status.PASS
    clock.advance(2 * 5 + 1.0)  # max age: two intervals + the 1 s timeout
    assert registry.readiness().status is Status.PASS
    clock.advance(0.5)
    report = registry.readiness()
    assert report.status is Status.FAIL
    assert report.check("db").stale


def test_readiness_body_is_rebuilt_only_when_something_changed() -> None:
    clock = FakeClock()
    registry = HealthRegistry([quick("db")], interval=5, clock=clock, hooks=[])
    registry.check_now()
    first = registry.readiness_document()
    assert registry.readiness_document()[1] is first[1]
    clock.advance(60)  # now stale: the verdict changed, so the body did
    assert registry.readiness_document()[1] != first[1]


def test_events_for_every_check_and_each_change_of_status() -> None:
    events: list[Event] = []
    state = {"status": Status.PASS}
    registry = HealthRegistry(
        [FunctionProbe(lambda: ProbeResult(state["status"], "x"), "dep", critical=False)],
        hooks=[events.append],
    )
    registry.check_now()
    registry.check_now()
    state["status"] = Status.WARN
    registry.check_now()
    checked = [e for e in events if isinstance(e, ProbeChecked)]
    changed = [e for e in events if isinstance(e, ProbeStatusChanged)]
    assert [e.status for e in checked] == ["pass", "pass", "warn"]
    assert [(e.from_status, e.to_status) for e in changed] == [
        ("unknown", "pass"),
        ("pass", "warn"),
    ]
    assert all(e.probe == "dep" and e.critical is False for e in checked)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: HealthRegistry(interval=0), "HealthRegistry.interval"),
        (lambda: HealthRegistry([quick("a"), quick("a")]), "already registered"),
        (lambda: HealthRegistry([quick("a")], interval=10, max_age=5), "shorter than its interval"),
        (lambda: FunctionProbe(lambda: True, "has:colon"), "no ':'"),
        (lambda: FunctionProbe(lambda: True, "x", timeout=0), "FunctionProbe.timeout"),
    ],
)
def test_bad_configuration_names_the_field(build, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_run_probe_stamps_duration_and_time() -> None:
    clock = FakeClock()

    def slow() -> bool:
        clock.advance(0.25)
        return True

    result = run_probe(FunctionProbe(slow, "s"), clock)
    assert result.duration == 0.25
    assert result.time == clock.wall()
    assert result.checked_at == clock.monotonic()


OTEL_SCRIPT = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
from sendguard.health import FunctionProbe, HealthRegistry, ProbeResult, Status
registry = HealthRegistry([
    FunctionProbe(lambda: ProbeResult(Status.FAIL, "down"), "db"),
    FunctionProbe(lambda: True, "cache", critical=False),
])
registry.check_now()
points = []
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            for p in m.data.data_points:
                points.append([m.name, dict(p.attributes), getattr(p, "value", None)])
print(json.dumps(points))
"""


def test_probe_status_duration_and_checks_are_opentelemetry_metrics() -> None:
    out = subprocess.run([sys.executable, "-W", "error", "-c", OTEL_SCRIPT], capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    points = json.loads(out.stdout)
    status = {p[1]["probe"]: p[2] for p in points if p[0] == "sendguard.health.probe.status"}
    assert status == {"db": 2, "cache": 0}
    durations = [p for p in points if p[0] == "sendguard.health.probe.duration"]
    assert {p[1]["probe"] for p in durations} == {"db", "cache"}
    assert all(p[2] >= 0 for p in durations)
    checks = {(p[1]["probe"], p[1]["status"]): p[2] for p in points
              if p[0] == "sendguard.health.checks"}  # fmt: skip
    assert checks == {("db", "fail"): 1, ("cache", "pass"): 1}
