"""The drill framework: goals, drills, the registry, the tables and simulated time."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import pytest

import sendguard.drills
from sendguard import ConfigError
from sendguard.drills import (
    DRILLS,
    Drill,
    DrillResult,
    Goal,
    Metric,
    SimulationStalled,
    UnknownDrill,
    Value,
    get_drill,
    render,
    render_headline,
    render_summary,
    simulate,
)
from sendguard.testing import FakeClock

LATENCY = Metric("p95", "p95 latency", "ms")
ERRORS = Metric("errors", "errors", "calls")
DETECT = Metric("detect", "time to detect", "s", digits=1)


class FakeReplay:
    """A replay that returns canned values and records how it was called."""

    def __init__(self, bare: Mapping[str, Value], guarded: Mapping[str, Value]) -> None:
        self.values = {False: dict(bare), True: dict(guarded)}
        self.calls: list[tuple[bool, float]] = []

    def __call__(self, *, guarded: bool, scale: float) -> Mapping[str, Value]:
        self.calls.append((guarded, scale))
        return self.values[guarded]


def make_drill(replay: FakeReplay, **changes: object) -> Drill:
    fields: dict[str, object] = {
        "name": "toy-outage",
        "incident": "a toy dependency falls over",
        "metrics": (LATENCY, ERRORS, DETECT),
        "goals": (
            Goal.at_most(LATENCY, 500, "p95 at most {bound} ms"),
            Goal.at_least(ERRORS, lambda scale: 10 * scale),
            Goal.at_most(DETECT, 5),
        ),
        "replay": replay,
        "headline": "p95",
        "min_scale": 0.1,
    }
    fields.update(changes)
    return Drill(**fields)  # type: ignore[arg-type]


def toy_result() -> tuple[DrillResult, FakeReplay]:
    replay = FakeReplay(
        {"p95": 30_000.0, "errors": 4, "detect": None}, {"p95": 180.0, "errors": 20, "detect": 2.5}
    )
    return make_drill(replay).run(0.5), replay


# --- metrics and goals ----------------------------------------------------------------


def test_metric_formats_with_its_digits_and_thousands() -> None:
    assert LATENCY.format(29_063.5) == "29,064"
    assert DETECT.format(1.66) == "1.7"
    assert DETECT.format(None) == "n/a"


@pytest.mark.parametrize(
    ("goal", "value", "passed"),
    [
        (Goal.at_most(LATENCY, 500), 500.0, True),
        (Goal.at_most(LATENCY, 500), 500.1, False),
        (Goal.at_least(ERRORS, 3), 3.0, True),
        (Goal.at_least(ERRORS, 3), 2.0, False),
        (Goal.at_most(DETECT, 5), None, False),
        (Goal.at_least(DETECT, 0), None, False),
    ],
)
def test_goal_checks_its_bound(goal: Goal, value: Value, passed: bool) -> None:
    target = goal.check(value, scale=1.0)
    assert target.passed is passed
    assert target.measured == value


def test_goal_bound_may_depend_on_scale_and_shows_in_description() -> None:
    goal = Goal.at_least(ERRORS, lambda scale: 100 * scale, "at least {bound} errors")
    assert goal.resolve(0.25) == 25
    assert goal.check(25, 0.25).passed
    assert not goal.check(25, 0.5).passed
    assert goal.check(25, 0.5).description == "at least 50 errors"


def test_goal_default_description_names_metric_bound_and_unit() -> None:
    assert Goal.at_most(DETECT, 5).check(1.0, 1.0).description == "time to detect <= 5.0 s"
    assert Goal.at_most(DETECT, 5).check(None, 1.0).measured_text == "n/a"
    assert Goal.at_most(DETECT, 5).check(1.25, 1.0).measured_text == "1.2 s"


# --- drills ----------------------------------------------------------------------------


def test_run_replays_unguarded_then_guarded_at_the_scale() -> None:
    result, replay = toy_result()
    assert replay.calls == [(False, 0.5), (True, 0.5)]
    assert result.scale == 0.5
    assert [(f.label, f.unit, f.unguarded, f.guarded) for f in result.figures] == [
        ("p95 latency", "ms", 30_000.0, 180.0),
        ("errors", "calls", 4, 20),
        ("time to detect", "s", None, 2.5),
    ]


def test_targets_are_checked_on_the_guarded_run_and_compared_on_the_unguarded() -> None:
    result, _ = toy_result()
    assert [t.passed for t in result.targets] == [True, True, True]
    assert [t.passed for t in result.unguarded_targets] == [False, False, False]
    assert [t.description for t in result.targets] == [
        "p95 at most 500 ms",
        "errors >= 5 calls",
        "time to detect <= 5.0 s",
    ]
    assert result.passed


def test_one_missed_target_fails_the_drill() -> None:
    replay = FakeReplay(
        {"p95": 1.0, "errors": 1, "detect": 1.0}, {"p95": 501.0, "errors": 99, "detect": 1.0}
    )
    result = make_drill(replay).run(1.0)
    assert [t.passed for t in result.targets] == [False, True, True]
    assert not result.passed


def test_figure_lookup_and_headline() -> None:
    result, _ = toy_result()
    assert result.figure("errors").guarded == 20
    assert result.headline_figure.label == "p95 latency"
    with pytest.raises(KeyError, match="has no figure 'nope'; it has: p95, errors, detect"):
        result.figure("nope")


def test_a_replay_that_skips_a_metric_is_an_error() -> None:
    replay = FakeReplay({"p95": 1.0, "errors": 1}, {"p95": 1.0, "errors": 1, "detect": 1.0})
    with pytest.raises(RuntimeError, match=r"did not measure \['detect'\]"):
        make_drill(replay).run(1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Toy Outage"}, "lower-case-with-dashes, got 'Toy Outage'"),
        ({"metrics": (LATENCY, LATENCY, ERRORS, DETECT)}, "unique keys"),
        ({"headline": "p99"}, "headline 'p99' is not one of"),
        ({"goals": (Goal.at_most(Metric("x", "x", "s"), 1),)}, r"metrics the drill lacks: \['x'\]"),
        ({"min_scale": 0}, "min_scale must be in"),
    ],
)
def test_drill_definition_is_validated(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_drill(FakeReplay({}, {}), **changes)


@pytest.mark.parametrize("scale", [0.05, 1.5, 0, -1, math.nan, math.inf, True])
def test_scale_outside_the_drills_range_is_refused(scale: float) -> None:
    replay = FakeReplay({}, {})
    with pytest.raises(ConfigError, match=r"between 0\.1 and 1, got"):
        make_drill(replay).run(scale)
    assert replay.calls == []


# --- registry --------------------------------------------------------------------------


def test_registry_knows_provider_outage_and_is_read_only() -> None:
    assert "provider-outage" in DRILLS
    assert get_drill("provider-outage") is DRILLS["provider-outage"]
    with pytest.raises(TypeError):
        DRILLS["other"] = DRILLS["provider-outage"]  # type: ignore[index]


def test_unknown_drill_lists_the_known_ones() -> None:
    with pytest.raises(UnknownDrill, match="no drill named 'nope'; known drills: provider-outage"):
        get_drill("nope")
    assert issubclass(UnknownDrill, LookupError)


def test_public_names_are_complete_and_sorted() -> None:
    exported = sendguard.drills.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n))
    for name in exported:
        assert hasattr(sendguard.drills, name), name


# --- tables ----------------------------------------------------------------------------


def test_render_aligns_columns_and_lists_targets() -> None:
    result, _ = toy_result()
    text = render(result)
    lines = text.splitlines()
    assert lines[0] == "drill toy-outage (scale 0.5): a toy dependency falls over"
    table = lines[2:7]
    assert table[0].split() == ["figure", "unit", "unguarded", "guarded"]
    # right-aligned numbers: every row of the table ends in the same column
    assert len({len(line) for line in table}) == 1
    assert table[2].split() == ["p95", "latency", "ms", "30,000", "180"]
    assert table[4].split() == ["time", "to", "detect", "s", "n/a", "2.5"]
    assert "PASS  p95 at most 500 ms" in text
    assert lines[-1] == "PASS: 3 of 3 targets met"


def test_render_marks_missed_targets() -> None:
    replay = FakeReplay(
        {"p95": 1.0, "errors": 1, "detect": 1.0}, {"p95": 900.0, "errors": 99, "detect": None}
    )
    text = render(make_drill(replay).run(1.0))
    assert "FAIL  p95 at most 500 ms" in text
    assert "FAIL  time to detect <= 5.0 s" in text
    assert "(scale" not in text.splitlines()[0]
    assert text.splitlines()[-1] == "FAIL: 1 of 3 targets met"


def test_summary_has_one_row_per_drill_with_its_headline() -> None:
    result, _ = toy_result()
    lines = render_summary([result, result]).splitlines()
    assert lines[0].split() == ["drill", "result", "targets", "headline", "unguarded", "guarded"]
    assert len(lines) == 4
    assert " ".join(lines[2].split()) == "toy-outage PASS 3/3 p95 latency 30,000 ms 180 ms"
    assert render_headline(result) == (
        "toy-outage: PASS (3/3 targets met); p95 latency: 30,000 ms unguarded, 180 ms guarded"
    )


# --- simulated time --------------------------------------------------------------------


def test_simulated_sleeps_run_concurrently_on_the_fake_clock() -> None:
    clock = FakeClock()
    start = clock.monotonic()

    async def main() -> list[float]:
        async def nap(seconds: float) -> float:
            await asyncio.sleep(seconds)
            return clock.monotonic() - start

        return list(await asyncio.gather(nap(2.0), nap(3.0), nap(2.0)))

    assert simulate(clock, main) == [2.0, 3.0, 2.0]
    assert clock.monotonic() - start == 3.0


def test_simulated_timeouts_fire_on_the_fake_clock() -> None:
    clock = FakeClock()
    start = clock.monotonic()

    async def main() -> str:
        try:
            await asyncio.wait_for(asyncio.sleep(3600), 2.0)  # simulated: returns at once
        except TimeoutError:
            return "timed out"
        return "answered"

    assert simulate(clock, main) == "timed out"
    assert clock.monotonic() - start == pytest.approx(2.0)


def test_a_simulation_waiting_on_nothing_is_stalled_not_hung() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimulationStalled, match="no timer is due"):
        simulate(FakeClock(), main)


def test_a_drill_missing_an_optional_package_is_unavailable_with_advice():
    from sendguard.drills import DrillUnavailable

    def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
        import sendguard_no_such_package  # type: ignore[import-not-found]  # noqa: F401

        return {}

    needy = make_drill(replay)  # type: ignore[arg-type]
    with pytest.raises(DrillUnavailable, match=r"sendguard\[drills\]"):
        needy.run(0.5)
