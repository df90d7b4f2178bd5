"""Drills: each one replays a real incident in-process, without its guard and with it.

    from sendguard.drills import get_drill, render

    result = get_drill("provider-outage").run(scale=0.25)
    print(render(result))
    assert result.passed

A drill prints the same figures for both runs and checks targets on the guarded one. On
the command line: ``sendguard drill NAME``, ``sendguard drill --all``. A new drill is one
module exposing a `Drill` and one line in `_ALL` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from sendguard.drills import (
    analytics_storm,
    analytics_storm_e2e,
    connection_exhaustion,
    cron_stall,
    fat_jobs,
    polling_storm,
    provider_outage,
    replay_duplicates,
    smtp_fog_of_war,
    tls_expiry,
    traffic_burst,
)
from sendguard.drills._base import (
    MAX_SCALE,
    Drill,
    DrillResult,
    DrillUnavailable,
    Figure,
    Goal,
    Metric,
    Replay,
    SimulationStalled,
    Target,
    UnknownDrill,
    Value,
    render,
    render_headline,
    render_summary,
    simulate,
)

__all__ = [
    "DRILLS",
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
    "get_drill",
    "render",
    "render_headline",
    "render_summary",
    "simulate",
]

_ALL: tuple[Drill, ...] = (
    provider_outage.DRILL,
    analytics_storm.DRILL,
    traffic_burst.DRILL,
    polling_storm.DRILL,
    fat_jobs.DRILL,
    cron_stall.DRILL,
    replay_duplicates.DRILL,
    connection_exhaustion.DRILL,
    tls_expiry.DRILL,
    smtp_fog_of_war.DRILL,
    analytics_storm_e2e.DRILL,
)

DRILLS: Mapping[str, Drill] = MappingProxyType({drill.name: drill for drill in _ALL})
"""Every drill by name, in the order `sendguard drill --all` runs them."""


def get_drill(name: str) -> Drill:
    """The drill called `name`; `UnknownDrill` (listing the known names) if there is none."""
    drill = DRILLS.get(name)
    if drill is None:
        raise UnknownDrill(f"no drill named {name!r}; known drills: {', '.join(DRILLS)}")
    return drill
