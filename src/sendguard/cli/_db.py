"""``sendguard db top | kill``: see and end Postgres sessions over the reserved admin role.

    sendguard db top --dsn "$SENDGUARD_ADMIN_DSN"
    sendguard db kill --older-than 60s --state "idle in transaction"            # dry run
    sendguard db kill --role app --application "worker-*" --execute

Both connect as a role allowed into the reserved slots (docs/health.md has the SQL), so
they get in when every ordinary slot is taken. ``kill`` is a dry run unless ``--execute``
is given; it cancels each selected session's query, waits ``--grace``, then terminates
the sessions that still match (``--cancel-only`` stops after the cancel). It never
signals its own session, and lists the sessions its role may not signal, with why.
Exit 0 on success, 1 when the database cannot be reached, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from sendguard._core.durations import format_duration
from sendguard._core.errors import ConfigError
from sendguard.cli._breaker import parse_duration
from sendguard.health import (
    AdminConnection,
    AdminUnavailable,
    KillReport,
    SaturationProbe,
    Session,
    SessionFilter,
    kill_sessions,
    list_sessions,
)
from sendguard.health._sessions import STATES

__all__ = ["ADMIN_DSN_ENV", "register"]

ADMIN_DSN_ENV = "SENDGUARD_ADMIN_DSN"
QUERY_WIDTH = 60


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def _one_line(query: str) -> str:
    text = " ".join(query.split())
    return text if len(text) <= QUERY_WIDTH else text[: QUERY_WIDTH - 3] + "..."


def _connect(args: argparse.Namespace) -> AdminConnection:
    dsn: str = args.dsn or os.environ.get(ADMIN_DSN_ENV, "")
    if not dsn:
        args.parser.error(f"pass --dsn with a role allowed into reserved slots, or set "
                          f"{ADMIN_DSN_ENV}")  # fmt: skip
    admin = AdminConnection(dsn, application_name="sendguard-cli", connect_timeout=5)
    admin.connect()
    return admin


def _runner(action: Callable[[argparse.Namespace, AdminConnection], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        try:
            admin = _connect(args)
        except AdminUnavailable as error:
            print(f"sendguard: {error}\n(if every slot is taken, only a role allowed into the "
                  "reserved slots gets in: see docs/health.md)", file=sys.stderr)  # fmt: skip
            return 1
        try:
            return action(args, admin)
        except AdminUnavailable as error:
            print(f"sendguard: {error}", file=sys.stderr)
            return 1
        finally:
            admin.close()

    return run


def _access(admin: AdminConnection) -> str:
    if admin.reserved_access is None:
        return f"role {admin.role} (NOT allowed into reserved slots)"
    return f"role {admin.role} (reserved slots via {admin.reserved_access})"


def _top(args: argparse.Namespace, admin: AdminConnection) -> int:
    reading = SaturationProbe(admin).read()
    print(
        f"connections: {reading.client_backends} of {reading.ordinary_slots} ordinary slots "
        f"({reading.utilization:.0%}; max_connections {reading.max_connections}); "
        f"{reading.idle_in_transaction} idle in transaction; {_access(admin)}"
    )
    sessions = list_sessions(admin)[: args.limit]
    if not sessions:
        print("no other client sessions")
        return 0
    rows = [["pid", "role", "application", "state", "xact", "query", "wait", "query text"]]
    for s in sessions:
        rows.append([str(s.pid), s.role, s.application or "-", s.state, _age(s.transaction_age),
                     _age(s.query_age), s.wait or "-", _one_line(s.query)])  # fmt: skip
    _table(rows)
    return 0


def _selection(args: argparse.Namespace) -> SessionFilter:
    try:
        selection = SessionFilter(
            older_than=args.older_than, states=args.state, roles=args.role,
            applications=args.application, databases=args.database, pids=args.pid,
        )  # fmt: skip
    except ConfigError as error:
        args.parser.error(str(error))
    if selection.is_empty and not args.every_session:
        args.parser.error(
            "no filter given: select sessions with --older-than, --state, "
            "--role, --application, --database or --pid (or --every-session)"
        )
    return selection


def _print_kill(report: KillReport) -> None:
    if not report.outcomes:
        print("no session matches")
        return
    rows = [["pid", "role", "application", "state", "for", "action", "detail"]]
    for outcome in report.outcomes:
        s: Session = outcome.session
        rows.append([str(s.pid), s.role, s.application or "-", s.state, _age(s.state_age),
                     outcome.action, outcome.detail or "-"])  # fmt: skip
    _table(rows)


def _kill(args: argparse.Namespace, admin: AdminConnection) -> int:
    selection = _selection(args)
    report = kill_sessions(admin, selection, execute=args.execute, cancel_only=args.cancel_only,
                           grace=args.grace)  # fmt: skip
    _print_kill(report)
    refused = len(report.refused)
    print()
    if report.dry_run:
        print(f"dry run: {len(report.outcomes) - refused} sessions would be signalled, "
              f"{refused} may not be; nothing was signalled: add --execute to act")  # fmt: skip
    else:
        print(f"{report.count('terminated')} terminated, {report.count('cancelled')} cancelled,"
              f" {report.count('gone')} ended on their own, {refused} not permitted")  # fmt: skip
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``db`` command and its subcommands."""
    group = commands.add_parser("db", help="see and end Postgres sessions (reserved admin role)")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", metavar="DSN", help=f"admin role DSN (default: ${ADMIN_DSN_ENV})")
    top = actions.add_parser("top", parents=[common], help="longest transactions and queries")
    top.add_argument("--limit", type=int, default=20, metavar="N", help="rows (default 20)")
    top.set_defaults(run=_runner(_top), parser=top)
    kill = actions.add_parser(
        "kill", parents=[common], help="cancel, then terminate, matching sessions (dry run by "
        "default)", description="Select sessions by every filter given; cancel their queries, "
        "wait --grace, terminate those that still match. A dry run unless --execute.",
    )  # fmt: skip
    kill.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="DURATION",
        help="in their current state for at least this long (90s, 5m)",
    )
    kill.add_argument(
        "--state",
        action="append",
        default=[],
        choices=STATES,
        metavar="STATE",
        help=f"one of: {', '.join(STATES)} (repeatable)",
    )
    kill.add_argument("--role", action="append", default=[], metavar="ROLE", help="(repeatable)")
    kill.add_argument(
        "--application",
        action="append",
        default=[],
        metavar="PATTERN",
        help="application_name, shell-style pattern (repeatable)",
    )
    kill.add_argument("--database", action="append", default=[], metavar="NAME")
    kill.add_argument("--pid", action="append", default=[], type=int, metavar="PID")
    kill.add_argument(
        "--every-session",
        action="store_true",
        help="allow no filter at all: every client session but this one",
    )
    kill.add_argument("--execute", action="store_true", help="act (default: a dry run)")
    kill.add_argument("--cancel-only", action="store_true", help="cancel; never terminate")
    kill.add_argument(
        "--grace",
        type=parse_duration,
        default=2.0,
        metavar="DURATION",
        help="wait this long after the cancel before terminating (default 2s)",
    )
    kill.set_defaults(run=_runner(_kill), parser=kill)  # fmt: skip
