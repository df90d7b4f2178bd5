"""`PayloadGuard`: policies per queue and function, batch budgets, warnings, dry runs, telemetry."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sendguard import ConfigError, Event
from sendguard.jobs import (
    KIB,
    MIB,
    PayloadGuard,
    PayloadNearBudget,
    PayloadPolicy,
    PayloadRefused,
    PayloadRejected,
    Violation,
    default_guard,
    lean_payloads,
)


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"max_bytes": 0}, ["max_bytes", "0"]),
        ({"max_bytes": 1.5}, ["max_bytes", "1.5"]),
        ({"warn_bytes": 64 * KIB}, ["warn_bytes", "65536", "max_bytes"]),
        ({"batch_max_bytes": 1 * KIB}, ["batch_max_bytes", "1024"]),
        ({"max_depth": 0}, ["max_depth", "0"]),
        ({"extra_types": [int]}, ["extra_types"]),
        ({"enforce": "yes"}, ["enforce", "'yes'"]),
    ],
)
def test_bad_policies_fail_when_built_naming_the_field(changes, names):
    with pytest.raises(ConfigError) as bad:
        PayloadPolicy(**changes)
    assert all(name in str(bad.value) for name in names)


def test_defaults_are_the_documented_budgets():
    policy = PayloadPolicy()
    assert (policy.max_bytes, policy.warn_bytes, policy.batch_max_bytes) == (
        64 * KIB,
        16 * KIB,
        8 * MIB,
    )
    assert policy.copy(max_bytes=128 * KIB).max_bytes == 128 * KIB


def test_policy_is_picked_by_function_then_pattern_then_queue():
    reports = PayloadPolicy(max_bytes=256 * KIB)
    exports = PayloadPolicy(max_bytes=1 * MIB, warn_bytes=None, batch_max_bytes=16 * MIB)
    tight = PayloadPolicy(max_bytes=1 * KIB, warn_bytes=None)
    guard = PayloadGuard(
        queues={"five_minutes": tight},
        functions={"app.reports.*": reports, "app.reports.export": exports},
        hooks=[],
    )
    assert guard.policy_for("app.reports.export", "five_minutes") is exports
    assert guard.policy_for("app.reports.weekly", "five_minutes") is reports
    assert guard.policy_for("app.jobs.send", "five_minutes") is tight
    assert guard.policy_for("app.jobs.send", "default") is guard.policy
    guard.check("app.reports.weekly", ("x" * 100 * KIB,), queue="five_minutes")
    with pytest.raises(PayloadRejected) as refused:
        guard.check("app.jobs.send", ("x" * 2 * KIB,), queue="five_minutes")
    assert refused.value.budget == 1 * KIB


def test_a_batch_adds_its_jobs_up_and_refuses_the_one_that_overflows():
    guard = PayloadGuard(hooks=[])

    def fan_out() -> None:
        with guard.batch(max_bytes=10 * KIB):
            for _ in range(100):
                guard.check("app.jobs.send", ("x" * 1000,), queue="q")

    with pytest.raises(PayloadRejected) as refused:
        fan_out()
    error = refused.value
    assert error.violation is Violation.BATCH
    assert error.budget == 10 * KIB
    assert "job 11 (app.jobs.send)" in str(error)
    # Outside the block, jobs are judged one by one again.
    assert guard.check("app.jobs.send", ("x" * 1000,)).size == 1010


def test_nested_batches_share_the_outer_budget_and_async_tasks_keep_their_own():
    guard = PayloadGuard(hooks=[])
    with guard.batch(max_bytes=3000):
        guard.check("f", ("x" * 1000,))
        with guard.batch(max_bytes=10**9):  # joins the outer batch and its budget
            guard.check("f", ("x" * 1000,))
            with pytest.raises(PayloadRejected):
                guard.check("f", ("x" * 1000,))

    async def fan_out() -> int:
        with guard.batch(max_bytes=2500):
            guard.check("f", ("x" * 1000,))
            await asyncio.sleep(0)  # the other task's jobs must not count here
            return guard.check("f", ("x" * 1000,)).size

    async def both() -> list[int]:
        return list(await asyncio.gather(fan_out(), fan_out()))

    assert asyncio.run(both()) == [1010, 1010]


def test_warning_threshold_logs_once_a_minute_and_counts_every_time(caplog):
    events: list[Event] = []
    guard = PayloadGuard(PayloadPolicy(warn_bytes=100), hooks=[events.append])
    with caplog.at_level(logging.WARNING, logger="sendguard"):
        checks = [guard.check("app.jobs.send", ("x" * 200,), queue="q") for _ in range(5)]
    assert all(check.warned for check in checks)
    assert len([r for r in caplog.records if "warning threshold" in r.message]) == 1
    assert [type(e) for e in events] == [PayloadNearBudget]
    assert guard.stats()[("q", "app.jobs.send")]["warned"] == 5


def test_a_dry_run_policy_reports_but_lets_the_job_through(caplog):
    events: list[Event] = []
    guard = PayloadGuard(PayloadPolicy(enforce=False), hooks=[events.append])
    with caplog.at_level(logging.WARNING, logger="sendguard"):
        check = guard.check("app.jobs.send", (object(),), queue="q")
    assert check.warned
    assert "would be rejected (enforce=False)" in caplog.text
    (event,) = events
    assert isinstance(event, PayloadRefused)
    assert (event.enforced, event.violation, event.path) == (False, "type", "args[0]")


def test_rejections_are_events_and_sizes_are_counted():
    events: list[Event] = []
    guard = PayloadGuard(hooks=[events.append])
    guard.check("app.jobs.send", (1, [2, 3]), queue="q")
    guard.check("app.jobs.send", (1, [2, 3, 4]), queue="q")
    with pytest.raises(PayloadRejected):
        guard.check("app.jobs.send", ("x" * 100 * KIB,), queue="q")
    (event,) = events
    assert isinstance(event, PayloadRefused)
    assert (event.queue, event.function, event.violation, event.enforced) == (
        "q",
        "app.jobs.send",
        "size",
        True,
    )
    assert event.budget == 64 * KIB
    assert guard.stats() == {
        ("q", "app.jobs.send"): {
            "checked": 2,
            "bytes": 17 + 20,
            "largest": 20,
            "rejected": 1,
            "warned": 0,
        }
    }


def test_counters_are_bounded():
    guard = PayloadGuard(hooks=[], max_tracked=2)
    for n in range(5):
        guard.check(f"app.jobs.f{n}", ())
    stats = guard.stats()
    assert len(stats) == 3
    assert stats[("(other)", "(other)")]["checked"] == 3


def test_payload_metrics_reach_an_opentelemetry_sdk():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from sendguard._core import telemetry

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    saved = telemetry._meter_state.get("meter")
    telemetry._meter_state["meter"] = provider.get_meter("sendguard")
    saved_observables = dict(telemetry._observables)
    telemetry._observables.clear()
    try:
        guard = PayloadGuard(hooks=[])
        guard.check("app.jobs.send", (1, [2, 3]), queue="otel")
        data = reader.get_metrics_data()
        assert data is not None
        found = {
            (m.name, dict(p.attributes or {}).get("queue"), getattr(p, "value", None))
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            for p in m.data.data_points
        }
        assert ("sendguard.jobs.payload.checked", "otel", 1) in found
        assert ("sendguard.jobs.payload.bytes", "otel", 17) in found  # len("[[1, [2, 3]], {}]")
        assert ("sendguard.jobs.payload.largest", "otel", 17) in found
    finally:
        telemetry._observables.clear()
        telemetry._observables.update(saved_observables)
        if saved is None:
            telemetry._meter_state.pop("meter", None)
        else:
            telemetry._meter_state["meter"] = saved
        provider.shutdown()


def test_lean_payloads_guards_any_enqueue_function_sync_and_async():
    sent: list[tuple[object, ...]] = []
    guard = PayloadGuard(hooks=[])

    @lean_payloads(guard, queue="emails")
    def publish(email_id: object, recipients: list[int]) -> None:
        sent.append((email_id, recipients))

    @lean_payloads(guard, queue="emails", function="app.jobs.send")
    async def apublish(email_id: object) -> str:
        return f"queued {email_id}"

    publish(1, [2, 3])
    with pytest.raises(PayloadRejected) as refused:
        publish(object(), [2])
    assert refused.value.function.endswith("publish")
    assert sent == [(1, [2, 3])]
    assert asyncio.run(apublish(7)) == "queued 7"
    with pytest.raises(PayloadRejected) as arefused:
        asyncio.run(apublish({"body": "x" * 70 * KIB}))
    assert arefused.value.function == "app.jobs.send"
    assert arefused.value.queue == "emails"


def test_the_default_guard_is_one_per_process():
    assert default_guard() is default_guard()
    assert default_guard().policy == PayloadPolicy()


def test_bad_guard_configuration_fails_at_once():
    with pytest.raises(ConfigError, match="queues"):
        PayloadGuard(queues={"q": 5})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="max_tracked"):
        PayloadGuard(max_tracked=0)
    with pytest.raises(ConfigError, match="max_bytes"), PayloadGuard().batch(max_bytes=0):
        pass
