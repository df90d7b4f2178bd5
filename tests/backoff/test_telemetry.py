"""Attempts, retries by reason, budget exhaustion and time waited reach OpenTelemetry.

The metrics are read through the real SDK in a fresh interpreter: a process has one
global meter provider, and the breaker tests install theirs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import json
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    from sendguard.backoff import Retrier, RetryBudget, RetryPolicy
    from sendguard.testing import FakeClock

    clock = FakeClock()
    retrier = Retrier(
        RetryPolicy(attempts=3, base=1, cap=1, budget=RetryBudget(capacity=2)),
        name="mailer", clock=clock,
    )
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] in (1, 4, 5, 6, 7):
            raise ConnectionError("down")
        return "ok"

    retrier.call(flaky)  # fails once, retried: 2 attempts
    retrier.call(flaky)  # succeeds at once
    for _ in range(2):
        try:
            retrier.call(flaky)
        except ConnectionError:
            pass

    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    attrs = dict(p.attributes or {})
                    key = metric.name + "|" + ",".join(f"{k}={v}" for k, v in sorted(attrs.items()))
                    points[key] = p.value
    print(json.dumps({"points": points, "waited": retrier.stats.waited}))
    """
)


def test_backoff_metrics_through_the_sdk():
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    points = found["points"]
    # call 1: fails, one retry succeeds (its token comes back); call 2: succeeds at once;
    # call 3: fails three times (two retries, the two tokens); call 4: fails, budget empty.
    assert points["sendguard.backoff.attempts|client=mailer"] == 2 + 1 + 3 + 1
    assert points["sendguard.backoff.retries|client=mailer,reason=connection_error"] == 3
    assert points["sendguard.backoff.budget_exhausted|client=mailer"] == 1
    assert points["sendguard.backoff.gave_up|client=mailer,why=budget"] == 1
    assert points["sendguard.backoff.gave_up|client=mailer,why=attempts"] == 1
    assert points["sendguard.backoff.wait_time|client=mailer"] == found["waited"]
    assert 0 < found["waited"] <= 3
