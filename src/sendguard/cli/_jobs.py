"""``sendguard jobs inspect | purge | unknowns | resolve``: backlogs and the idempotency ledger.

    sendguard jobs inspect --redis redis://localhost:6379/0 --queue five_minutes --top 20
    sendguard jobs purge --function send_email_to --min-size 1MiB --registry scheduled
    sendguard jobs purge --function send_email_to --min-size 1MiB --execute
    sendguard jobs unknowns --store redis://localhost:6379/0 --ledger sends
    sendguard jobs resolve "send:msg_42" --ledger sends --not-sent --note "not in provider log"

``inspect`` and ``purge`` read RQ's keys in batches and never deserialise a job, so they
run in a few tens of MB against a backlog of gigabytes. ``purge`` is a dry run unless
``--execute``. Exit status: 0 on success, 1 when Redis or the ledger store cannot be
reached, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from sendguard._core.durations import format_duration
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard.cli._breaker import parse_duration
from sendguard.jobs import (
    REGISTRIES,
    BacklogReport,
    JobInfo,
    Ledger,
    LedgerEntry,
    PurgeFilter,
    PurgeReport,
    inspect_backlog,
    purge_backlog,
)
from sendguard.jobs._measure import describe_size
from sendguard.jobs._purge import DEFAULT_PURGE_REGISTRIES
from sendguard.jobs._rq_layout import ORPHANED

if TYPE_CHECKING:
    import redis

__all__ = ["REDIS_ENV", "STORE_ENV", "parse_size", "print_table", "register"]

REDIS_ENV = "REDIS_URL"
STORE_ENV = "SENDGUARD_STORE"
REDIS_TIMEOUT = 10.0
"""Seconds a Redis command may take from the command line (a pipeline of 500 jobs)."""
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)(i?b?)", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes in ``512``, ``64K``, ``64KiB``, ``1.5MB``, ``2G`` (K, M, G are powers of 1024)."""
    found = _SIZE.fullmatch(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use 512, 64KiB, 1.5MiB or 2GiB")
    return round(float(found.group(1)) * _UNITS[found.group(2).lower()])


def print_table(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> None:
    """Print `rows` (the first is the header) as aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def _redis(args: argparse.Namespace) -> redis.Redis:
    import redis

    from sendguard._core.store import REDIS_CLUSTER_SCHEMES, connect_redis

    url: str = args.redis or os.environ.get(REDIS_ENV, "")
    if not url:
        args.parser.error(
            f"pass --redis redis://HOST:6379/0 (the Redis your RQ uses) or set {REDIS_ENV}"
        )
    if url.startswith(REDIS_CLUSTER_SCHEMES):
        args.parser.error(f"RQ needs a single Redis, not a cluster: got {url.split('@')[-1]!r}")
    client = connect_redis(url, timeout=REDIS_TIMEOUT)
    assert isinstance(client, redis.Redis)  # any non-cluster URL gives a single-node client
    return client


def _with_redis(action: Callable[[argparse.Namespace, redis.Redis], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        import redis

        client = _redis(args)
        try:
            return action(args, client)
        except (redis.RedisError, OSError) as error:
            print(f"sendguard: Redis did not answer: {error}", file=sys.stderr)
            return 1
        finally:
            client.close()

    return run


# --- inspect -----------------------------------------------------------------------------


def _job_rows(jobs: Sequence[JobInfo]) -> list[list[str]]:
    rows = [["id", "queue", "registry", "function", "data", "memory", "age"]]
    for job in jobs:
        memory = "-" if job.memory_bytes is None else describe_size(job.memory_bytes)
        rows.append(
            [
                job.id,
                job.queue,
                job.registry,
                job.function,
                describe_size(job.data_bytes),
                memory,
                _age(job.age),
            ]
        )
    return rows


def _print_backlog(report: BacklogReport) -> None:
    if not report.registries:
        print("no RQ jobs found")
        return
    rows = [["queue", "registry", "jobs", "data", "memory", "oldest", "missing"]]
    for r in report.registries:
        memory = "-" if r.memory_bytes is None else describe_size(r.memory_bytes)
        rows.append(
            [
                r.queue,
                r.registry,
                f"{r.count:,}",
                describe_size(r.data_bytes),
                memory,
                _age(r.oldest_age),
                str(r.missing or "-"),
            ]
        )
    print_table(rows, right={2, 3, 4, 5})
    print(
        f"\n{report.jobs:,} jobs holding {describe_size(report.data_bytes)} of job data "
        f"(inspected in {report.seconds:.1f}s)\n"
    )
    rows = [["function", "jobs", "data", "largest"]]
    rows += [
        [f.function, f"{f.count:,}", describe_size(f.data_bytes), describe_size(f.largest)]
        for f in report.functions
    ]
    print("functions holding the most data:")
    print_table(rows, right={1, 2, 3})
    if report.largest:
        print("\nlargest jobs:")
        print_table(_job_rows(report.largest), right={4, 5, 6})


def _inspect(args: argparse.Namespace, client: redis.Redis) -> int:
    report = inspect_backlog(
        client,
        queues=args.queue or None,
        prefix=args.prefix,
        top=args.top,
        batch=args.batch,
        memory=not args.no_memory,
        orphans=args.orphans,
    )
    if args.json:
        print(json.dumps(_backlog_json(report), indent=2))
    else:
        _print_backlog(report)
    return 0


def _backlog_json(report: BacklogReport) -> dict[str, Any]:
    return {
        "jobs": report.jobs,
        "data_bytes": report.data_bytes,
        "seconds": report.seconds,
        "registries": [_fields(r) for r in report.registries],
        "functions": [_fields(f) for f in report.functions],
        "largest": [_fields(j) for j in report.largest],
    }


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__slots__}


# --- purge -------------------------------------------------------------------------------


def _purge(args: argparse.Namespace, client: redis.Redis) -> int:
    try:
        wanted = PurgeFilter(
            function=args.function,
            min_bytes=args.min_size,
            older_than=args.older_than,
            registries=tuple(args.registry or DEFAULT_PURGE_REGISTRIES),
            queues=tuple(args.queue or ()),
            everything=args.everything,
        )
    except ConfigError as error:
        args.parser.error(str(error))
    report = purge_backlog(
        client, wanted, execute=args.execute, prefix=args.prefix, batch=args.batch, sample=10
    )
    if args.json:
        print(json.dumps(_purge_json(report), indent=2))
        return 0
    _print_purge(report)
    return 0


def _purge_json(report: PurgeReport) -> dict[str, Any]:
    return {
        "executed": report.executed,
        "matched": report.matched,
        "matched_bytes": report.matched_bytes,
        "deleted": report.deleted,
        "by_registry": [
            {"queue": q, "registry": r, "jobs": n}
            for (q, r), n in sorted(report.by_registry.items())
        ],
        "sample": [_fields(j) for j in report.sample],
    }


def _print_purge(report: PurgeReport) -> None:
    if not report.matched:
        print("no job matches")
        return
    rows = [["queue", "registry", "jobs"]]
    rows += [[q, r, f"{n:,}"] for (q, r), n in sorted(report.by_registry.items())]
    print_table(rows, right={2})
    print(f"\nfirst {len(report.sample)} of {report.matched:,} matches:")
    print_table(_job_rows(report.sample), right={4, 5, 6})
    print()
    size = describe_size(report.matched_bytes)
    if report.executed:
        print(f"purged {report.deleted:,} jobs ({size} of job data) in {report.seconds:.1f}s")
    else:
        print(
            f"dry run: {report.matched:,} jobs ({size} of job data) would be purged; "
            "nothing was removed: add --execute to purge them"
        )


# --- the ledger ----------------------------------------------------------------------------


def _ledger(args: argparse.Namespace) -> Ledger:
    url: str = args.store or os.environ.get(STORE_ENV, "")
    if not url or url.startswith("memory"):
        args.parser.error(f"pass --store (redis://... or postgresql://...) or set {STORE_ENV}")
    from sendguard.jobs import open_ledger_store

    try:
        store = open_ledger_store(url, timeout=2.0)
    except ConfigError as error:
        args.parser.error(str(error))
    return Ledger(store, name=args.ledger, hooks=[])


def _with_ledger(action: Callable[[argparse.Namespace, Ledger], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        ledger = _ledger(args)
        try:
            return action(args, ledger)
        except StoreUnavailable as error:
            print(f"sendguard: the ledger store did not answer: {error}", file=sys.stderr)
            return 1
        finally:
            ledger.close()

    return run


def _entry_row(entry: LedgerEntry, now: float) -> list[str]:
    return [
        entry.key,
        entry.state.value,
        str(entry.attempts),
        _age(now - entry.updated_at),
        entry.detail or "-",
    ]


def _unknowns(args: argparse.Namespace, ledger: Ledger) -> int:
    import time

    entries = ledger.unknowns(args.limit)
    if args.json:
        print(json.dumps([_fields(e) | {"state": e.state.value} for e in entries], indent=2))
        return 0
    if not entries:
        print(f"ledger {ledger.name!r}: no entry with an unknown outcome")
        return 0
    rows = [["key", "state", "attempts", "since", "why"]]
    rows += [_entry_row(entry, time.time()) for entry in entries]
    print_table(rows, right={2, 3})
    print(
        f"\n{len(entries)} entries whose outcome is unknown: find out what happened, then "
        "`sendguard jobs resolve KEY --sent` (or --not-sent, and it runs again)"
    )
    return 0


def _resolve(args: argparse.Namespace, ledger: Ledger) -> int:
    note = args.note.strip()
    if not note:
        args.parser.error("--note must say how you know (for the next operator)")
    try:
        entry = ledger.resolve(args.key, completed=args.sent, note=note)
    except ConfigError as error:
        print(f"sendguard: {error}", file=sys.stderr)
        return 1
    then = "replays are no-ops" if args.sent else "the next call runs it again"
    print(f"{args.key!r} resolved as {entry.state.value} ({note}): {then}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``jobs`` command and its subcommands."""
    group = commands.add_parser(
        "jobs", help="inspect and purge RQ backlogs; the idempotency ledger"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    backlog = argparse.ArgumentParser(add_help=False)
    backlog.add_argument(
        "--redis", metavar="URL", help=f"the Redis RQ uses (default: ${REDIS_ENV})"
    )
    backlog.add_argument(
        "--queue", action="append", metavar="NAME", help="(repeatable; default: all)"
    )
    backlog.add_argument("--prefix", default="rq", help="RQ's key prefix (default: rq)")
    backlog.add_argument("--batch", type=int, default=500, metavar="N", help="ids per round trip")
    backlog.add_argument("--json", action="store_true", help="print JSON")

    inspect = actions.add_parser(
        "inspect",
        parents=[backlog],
        help="count, size and age jobs per queue and registry, without deserialising any",
    )
    inspect.add_argument(
        "--top", type=int, default=10, metavar="N", help="largest jobs and functions"
    )
    inspect.add_argument("--no-memory", action="store_true", help="skip MEMORY USAGE per job")
    inspect.add_argument(
        "--orphans", action="store_true", help="also SCAN for job hashes no registry lists"
    )
    inspect.set_defaults(run=_with_redis(_inspect), parser=inspect)

    purge = actions.add_parser(
        "purge", parents=[backlog], help="remove matching jobs (dry run unless --execute)"
    )
    purge.add_argument("--function", metavar="TEXT", help="in the function's name (or a *-pattern)")
    purge.add_argument("--min-size", type=parse_size, metavar="SIZE", help="stored data >= SIZE")
    purge.add_argument("--older-than", type=parse_duration, metavar="DURATION", help="e.g. 6h")
    purge.add_argument(
        "--registry",
        action="append",
        choices=(*REGISTRIES, ORPHANED),
        metavar="NAME",
        help="(repeatable; default: all but started)",
    )
    purge.add_argument("--everything", action="store_true", help="allow no criterion")
    purge.add_argument("--execute", action="store_true", help="really remove them")
    purge.set_defaults(run=_with_redis(_purge), parser=purge)

    ledger = argparse.ArgumentParser(add_help=False)
    ledger.add_argument(
        "--store", metavar="URL", help=f"the ledger's store (default: ${STORE_ENV})"
    )
    ledger.add_argument("--ledger", default="default", metavar="NAME", help="the ledger's name")
    unknowns = actions.add_parser(
        "unknowns", parents=[ledger], help="list entries whose outcome is unknown"
    )
    unknowns.add_argument("--limit", type=int, default=100, metavar="N")
    unknowns.add_argument("--json", action="store_true", help="print JSON")
    unknowns.set_defaults(run=_with_ledger(_unknowns), parser=unknowns)
    resolve = actions.add_parser("resolve", parents=[ledger], help="settle an unknown entry")
    resolve.add_argument("key", metavar="KEY")
    which = resolve.add_mutually_exclusive_group(required=True)
    which.add_argument("--sent", action="store_true", help="it happened: replays are no-ops")
    which.add_argument("--not-sent", action="store_true", help="it did not: the next call runs")
    resolve.add_argument("--note", required=True, help="how you know")
    resolve.set_defaults(run=_with_ledger(_resolve), parser=resolve)
