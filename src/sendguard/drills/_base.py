"""The drill framework: what a drill declares, what it returns, and how it is printed.

A drill replays one incident twice, without its guard and with it, and measures the same
metrics on both runs. It declares:

- `Metric`s: the rows of its table (a key, a label, a unit, how many decimals);
- `Goal`s: targets on some of those metrics (``p95 send latency <= 500 ms``), checked on
  the guarded run (and, for comparison, on the unguarded one);
- a `Replay`: a function ``replay(guarded=..., scale=...)`` returning ``{metric key: value}``.

`Drill.run(scale)` calls the replay twice and returns a `DrillResult`; `render` and
`render_summary` print results as plain-text tables. `simulate` runs a coroutine on an
event loop whose time is a `FakeClock` that jumps to the next timer, so a drill with
concurrent senders and two-second timeouts runs in milliseconds and repeats exactly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

from sendguard._core.errors import ConfigError, SendguardError
from sendguard.testing._simulation import SimulationStalled, simulate

__all__ = [
    "MAX_SCALE",
    "Drill",
    "DrillResult",
    "DrillUnavailable",
    "Figure",
    "Goal",
    "Metric",
    "Replay",
    "SimulationStalled",
    "Target",
    "UnknownDrill",
    "Value",
    "percentile",
    "render",
    "render_headline",
    "render_summary",
    "simulate",
]

T = TypeVar("T")

Value = float | None
"""A measured value; None means "not applicable" (printed as ``n/a``)."""

MAX_SCALE = 1.0
"""Scale 1.0 is the full drill (the command line's default); tests run shorter ones."""

_NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


class UnknownDrill(SendguardError, LookupError):
    """No drill has the name asked for. The message lists the known names."""


class DrillUnavailable(SendguardError, RuntimeError):
    """A drill cannot run on this machine (a server binary it needs is missing).

    The message says what to install. ``sendguard drill --all`` lists such drills as
    skipped; running one by name fails with the message.
    """


@dataclass(frozen=True, slots=True)
class Metric:
    """One row of a drill's table: what is measured, its unit and its decimals."""

    key: str
    label: str
    unit: str
    digits: int = 0

    def format(self, value: Value) -> str:
        """`value` with this metric's decimals and thousands separators (``n/a`` for None)."""
        return "n/a" if value is None else f"{value:,.{self.digits}f}"


@dataclass(frozen=True, slots=True)
class Target:
    """One goal checked on one run: what was asked, whether it held, what was measured."""

    description: str
    passed: bool
    metric: Metric
    measured: Value

    @property
    def measured_text(self) -> str:
        """The measured value with its unit (``152 ms``, ``n/a``)."""
        text = self.metric.format(self.measured)
        return text if self.measured is None else f"{text} {self.metric.unit}"


@dataclass(frozen=True, slots=True)
class Goal:
    """A target on one metric: its value must be at most (or at least) `bound`.

    `bound` may be a function of the drill's scale (a message count that shrinks with
    it). `description` may use ``{bound}``; it defaults to ``<label> <= <bound> <unit>``.
    A value of None (not applicable: the event never happened) never meets a goal.
    """

    metric: Metric
    op: Literal["<=", ">="]
    bound: float | Callable[[float], float]
    description: str = ""

    @classmethod
    def at_most(
        cls, metric: Metric, bound: float | Callable[[float], float], description: str = ""
    ) -> Goal:
        """`metric` <= `bound`."""
        return cls(metric, "<=", bound, description)

    @classmethod
    def at_least(
        cls, metric: Metric, bound: float | Callable[[float], float], description: str = ""
    ) -> Goal:
        """`metric` >= `bound`."""
        return cls(metric, ">=", bound, description)

    def resolve(self, scale: float) -> float:
        """The bound at `scale`."""
        return self.bound(scale) if callable(self.bound) else float(self.bound)

    def check(self, value: Value, scale: float) -> Target:
        """Judge `value` measured on a run at `scale`."""
        bound = self.resolve(scale)
        passed = value is not None and (value <= bound if self.op == "<=" else value >= bound)
        shown = self.metric.format(bound)
        text = self.description or f"{self.metric.label} {self.op} {{bound}} {self.metric.unit}"
        return Target(text.format(bound=shown), passed, self.metric, value)


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of a drill's table: a metric measured on both runs."""

    metric: Metric
    unguarded: Value
    guarded: Value

    @property
    def label(self) -> str:
        """The metric's label."""
        return self.metric.label

    @property
    def unit(self) -> str:
        """The metric's unit."""
        return self.metric.unit


@dataclass(frozen=True, slots=True)
class DrillResult:
    """What one drill measured: the same figures for both runs, and the guarded targets.

    `unguarded_targets` are the same goals checked on the unguarded run, to show which
    ones the guard is needed for. `passed` is about the guarded run only.
    """

    name: str
    incident: str
    scale: float
    figures: tuple[Figure, ...]
    targets: tuple[Target, ...]
    unguarded_targets: tuple[Target, ...]
    headline: str
    """The key of the metric that sums the drill up in `render_summary`."""

    @property
    def passed(self) -> bool:
        """True when every target held on the guarded run."""
        return all(target.passed for target in self.targets)

    def figure(self, key: str) -> Figure:
        """The row of the metric with `key`."""
        for row in self.figures:
            if row.metric.key == key:
                return row
        known = ", ".join(row.metric.key for row in self.figures)
        raise KeyError(f"drill {self.name!r} has no figure {key!r}; it has: {known}")

    @property
    def headline_figure(self) -> Figure:
        """The figure that sums the drill up."""
        return self.figure(self.headline)


class Replay(Protocol):
    """Replays an incident once and measures it: ``{metric key: value}``."""

    def __call__(self, *, guarded: bool, scale: float) -> Mapping[str, Value]: ...


@dataclass(frozen=True, slots=True)
class Drill:
    """One incident drill: its metrics, its goals and the function that replays it.

    `min_scale` is the shortest run in which the drill still means something (its
    targets are calibrated from there up to `MAX_SCALE`).
    """

    name: str
    incident: str
    metrics: tuple[Metric, ...]
    goals: tuple[Goal, ...]
    replay: Replay = field(compare=False)
    headline: str
    min_scale: float = 0.05

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"Drill.name must be lower-case-with-dashes, got {self.name!r}")
        keys = [metric.key for metric in self.metrics]
        if len(set(keys)) != len(keys) or not keys:
            raise ConfigError(f"Drill.metrics need unique keys, got {keys!r}")
        if self.headline not in keys:
            raise ConfigError(f"Drill.headline {self.headline!r} is not one of {keys!r}")
        strays = [goal.metric.key for goal in self.goals if goal.metric not in self.metrics]
        if strays:
            raise ConfigError(f"Drill.goals are on metrics the drill lacks: {strays!r}")
        if not 0 < self.min_scale <= MAX_SCALE:
            raise ConfigError(f"Drill.min_scale must be in (0, 1], got {self.min_scale!r}")

    def check_scale(self, scale: float) -> float:
        """`scale` as a float, or a `ConfigError` naming the allowed range."""
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not math.isfinite(scale)
            or not self.min_scale <= scale <= MAX_SCALE
        ):
            raise ConfigError(
                f"scale for drill {self.name!r} must be between {self.min_scale:g} and "
                f"{MAX_SCALE:g}, got {scale!r}"
            )
        return float(scale)

    def measure(self, *, guarded: bool, scale: float) -> dict[str, Value]:
        """One run's values, checked to cover every metric of the drill."""
        try:
            values = dict(self.replay(guarded=guarded, scale=scale))
        except ModuleNotFoundError as absent:  # an optional package the drill builds on
            raise DrillUnavailable(
                f"it needs the {absent.name!r} package: pip install 'sendguard[drills]'"
            ) from absent
        missing = [metric.key for metric in self.metrics if metric.key not in values]
        if missing:
            raise RuntimeError(f"drill {self.name!r} did not measure {missing!r}")
        return values

    def run(self, scale: float = MAX_SCALE) -> DrillResult:
        """Replay without the guard, then with it, and check the goals on both."""
        scale = self.check_scale(scale)
        bare = self.measure(guarded=False, scale=scale)
        guarded = self.measure(guarded=True, scale=scale)
        return DrillResult(
            name=self.name,
            incident=self.incident,
            scale=scale,
            figures=tuple(Figure(m, bare[m.key], guarded[m.key]) for m in self.metrics),
            targets=tuple(g.check(guarded[g.metric.key], scale) for g in self.goals),
            unguarded_targets=tuple(g.check(bare[g.metric.key], scale) for g in self.goals),
            headline=self.headline,
        )


# --- plain-text tables -------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Rows padded to aligned columns; columns in `right` are right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule, *(line(row) for row in rows)]


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def render(result: DrillResult) -> str:
    """A drill's figures for both runs, then its targets with PASS/FAIL, as aligned text."""
    scale = "" if result.scale == MAX_SCALE else f" (scale {result.scale:g})"
    lines = [f"drill {result.name}{scale}: {result.incident}", ""]
    rows = [
        [row.label, row.unit, row.metric.format(row.unguarded), row.metric.format(row.guarded)]
        for row in result.figures
    ]
    lines += _table(["figure", "unit", "unguarded", "guarded"], rows, right={2, 3})
    lines += ["", "targets (guarded run):"]
    target_rows = [
        [_verdict(t.passed), t.description, t.measured_text, _verdict(u.passed)]
        for t, u in zip(result.targets, result.unguarded_targets, strict=True)
    ]
    lines += _table(["", "target", "measured", "unguarded"], target_rows, right={2})
    held = sum(target.passed for target in result.targets)
    lines += ["", f"{_verdict(result.passed)}: {held} of {len(result.targets)} targets met"]
    return "\n".join(lines)


def _headline_cells(result: DrillResult) -> list[str]:
    head = result.headline_figure
    held = sum(target.passed for target in result.targets)
    return [
        result.name,
        _verdict(result.passed),
        f"{held}/{len(result.targets)}",
        head.label,
        f"{head.metric.format(head.unguarded)} {head.unit}",
        f"{head.metric.format(head.guarded)} {head.unit}",
    ]


def render_headline(result: DrillResult) -> str:
    """One sentence: the verdict, and the headline figure without and with the guard."""
    name, verdict, held, label, bare, guarded = _headline_cells(result)
    return f"{name}: {verdict} ({held} targets met); {label}: {bare} unguarded, {guarded} guarded"


def render_summary(results: Sequence[DrillResult]) -> str:
    """One row per drill: its verdict and its headline figure on both runs."""
    header = ["drill", "result", "targets", "headline", "unguarded", "guarded"]
    rows = [_headline_cells(result) for result in results]
    return "\n".join(_table(header, rows, right={2, 4, 5}))


# --- simulated time ----------------------------------------------------------------------
