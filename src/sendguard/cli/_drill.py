"""``sendguard drill NAME | --all | --list``: replay incidents without and with their guards."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sendguard._core.errors import ConfigError
from sendguard.drills import (
    DRILLS,
    MAX_SCALE,
    Drill,
    DrillResult,
    DrillUnavailable,
    UnknownDrill,
    get_drill,
    render,
    render_summary,
)

__all__ = ["register", "run_all"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``drill`` command."""
    parser = commands.add_parser(
        "drill",
        help="replay an incident without and with its guard",
        description="Replay an incident twice, without its guard and with it, and check the "
        "guarded run against its targets. Exit 0 when every target is met, 1 otherwise.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", metavar="NAME", help="the drill to run")
    which.add_argument("--all", action="store_true", help="run every drill, then sum them up")
    which.add_argument("--list", action="store_true", help="list the drills")
    parser.add_argument(
        "--scale",
        type=float,
        default=MAX_SCALE,
        metavar="F",
        help=f"run with a share F of the traffic (default {MAX_SCALE:g}: the full drill)",
    )
    parser.set_defaults(run=_run, parser=parser)


def _run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.list:
        width = max(map(len, DRILLS))
        for drill in DRILLS.values():
            print(f"{drill.name.ljust(width)}  {drill.incident}")
        return 0
    try:
        drills = list(DRILLS.values()) if args.all else [get_drill(args.name)]
        for drill in drills:
            drill.check_scale(args.scale)
    except (UnknownDrill, ConfigError) as exc:
        parser.error(str(exc))
    if not args.all:
        try:
            result = drills[0].run(args.scale)
        except DrillUnavailable as missing:
            print(f"drill {drills[0].name}: cannot run here: {missing}", file=sys.stderr)
            return 1
        print(render(result))
        return 0 if result.passed else 1
    return run_all(drills, args.scale, tables=True)


def run_all(drills: Sequence[Drill], scale: float = MAX_SCALE, *, tables: bool) -> int:
    """Run `drills` one after another and end with one summary table.

    With `tables`, each drill's own table is printed as it ends; without, one line per
    drill says it ran. Drills that cannot run here (a missing package or server binary)
    are listed after the summary. Returns 0 when every drill that ran met its targets.
    """
    results: list[DrillResult] = []
    skipped: list[str] = []
    for drill in drills:
        if tables and (results or skipped):
            print()
        try:
            result = drill.run(scale)
        except DrillUnavailable as missing:
            print(f"drill {drill.name}: cannot run here: {missing}", file=sys.stderr)
            skipped.append(f"{drill.name} (cannot run here: {missing})")
            continue
        results.append(result)
        if tables:
            print(render(result))
        else:
            verdict = "PASS" if result.passed else "FAIL"
            print(f"  {drill.name:<24} {verdict}", flush=True)
    print()
    print(render_summary(results))
    for line in skipped:
        print(f"skipped: {line}")
    return 0 if all(result.passed for result in results) else 1
