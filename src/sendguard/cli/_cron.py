"""``sendguard cron status``: which cron jobs are late, stalled or failing, from their heartbeats.

    sendguard cron status --store redis://localhost:6379/0
    sendguard cron status --problems --json

It reads the heartbeats the jobs record (`sendguard.jobs.Heartbeats`), so it works when
cron itself is down: run it from anything that is not cron (an uptime checker, a health
endpoint, a laptop). Exit status: 0 when no job is stalled or failing, 1 when one is (or
the store cannot be reached), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sendguard._core.durations import format_duration
from sendguard._core.errors import StoreUnavailable
from sendguard.cli._jobs import STORE_ENV, print_table
from sendguard.jobs import CronStatus, Heartbeats

__all__ = ["register"]


def _when(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _row(status: CronStatus) -> list[str]:
    record = status.record
    return [
        status.name,
        status.state.value,
        _when(status.since_success) + ("" if record.succeeded_at else " (never)"),
        _when(record.duration),
        format_duration(record.every),
        format_duration(record.grace),
        str(record.failures or "-"),
        status.message or "-",
    ]


def _json(status: CronStatus) -> dict[str, object]:
    record = status.record
    return {
        "name": status.name,
        "state": status.state.value,
        "since_success_s": round(status.since_success, 1),
        "overdue_s": round(status.overdue, 1),
        "message": status.message,
        "every_s": record.every,
        "grace_s": record.grace,
        "last_success": record.succeeded_at,
        "last_failure": record.failed_at,
        "last_duration_s": record.duration,
        "failures_in_a_row": record.failures,
        "runs": record.runs,
        "error": record.error,
    }


def _status(args: argparse.Namespace) -> int:
    url: str = args.store or os.environ.get(STORE_ENV, "")
    if not url or url.startswith("memory"):
        args.parser.error(
            f"cron status reads the heartbeats your jobs record: pass --store "
            f"redis://HOST:6379/0 or set {STORE_ENV}"
        )
    heartbeats = Heartbeats(url, hooks=[])
    try:
        statuses = heartbeats.statuses()
    except StoreUnavailable as error:
        print(f"sendguard: the heartbeat store did not answer: {error}", file=sys.stderr)
        return 1
    finally:
        heartbeats.close()
    shown = [s for s in statuses if s.state.value != "ok"] if args.problems else statuses
    if args.json:
        print(json.dumps([_json(s) for s in shown], indent=2))
    elif not statuses:
        print("no cron job has recorded a heartbeat yet")
    else:
        rows = [["job", "state", "since success", "took", "every", "grace", "fails", "why"]]
        print_table(rows + [_row(s) for s in shown], right={2, 3, 4, 5, 6})
        problems = sum(s.state.problem for s in statuses)
        late = sum(s.state.value == "late" for s in statuses)
        print(f"\n{len(statuses)} jobs: {problems} stalled or failing, {late} late")
    return 1 if any(s.state.problem for s in statuses) else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``cron`` command and its ``status`` subcommand."""
    group = commands.add_parser("cron", help="cron jobs' heartbeats: late, stalled, failing")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser(
        "status",
        help="list cron jobs with their state (exit 1 if one is stalled or failing)",
        description="List the cron jobs that record heartbeats, problems first.",
    )
    status.add_argument(
        "--store", metavar="URL", help=f"the heartbeat store (default: ${STORE_ENV})"
    )
    status.add_argument(
        "--problems", action="store_true", help="only late, stalled and failing jobs"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=_status, parser=status)
