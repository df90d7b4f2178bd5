"""``sendguard health check | beat``: the health probes once, for cron and exec probes.

    sendguard health check --config guard.toml
    sendguard health check --postgres "$DATABASE_URL" --tls links.example.com --json
    sendguard health check --url http://127.0.0.1:8000/readyz     # ask a running app
    sendguard health beat nightly-digest --store redis://localhost:6379/0

``check`` runs every probe at once (each bounded by its timeout), prints one line per
check (or the health+json document with ``--json``) and exits 0 when readiness passes or
only warns, 1 when it fails (or, with ``--fail-on-warn``, warns), 2 on a usage or
configuration error. ``beat`` records a heartbeat, for a crontab line to end with
(``job && sendguard health beat job-name``), so the application notices when cron stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from sendguard._core.errors import ConfigError
from sendguard._core.store import REDIS_SCHEMES
from sendguard.cli._breaker import parse_duration
from sendguard.health import (
    HealthRegistry,
    HealthReport,
    HttpProbe,
    PostgresProbe,
    Probe,
    RedisHeartbeats,
    RedisProbe,
    SaturationProbe,
    Status,
    load_config,
    tls_probes,
)
from sendguard.health._admin import AdminConnection

__all__ = ["CONFIG_ENV", "register"]

CONFIG_ENV = "SENDGUARD_HEALTH_CONFIG"
STORE_ENV = "SENDGUARD_STORE"


def _probes_from_flags(args: argparse.Namespace) -> list[Probe]:
    timeout: float = args.timeout
    probes: list[Probe] = []
    for index, dsn in enumerate(args.postgres):
        name = "postgres" if index == 0 else f"postgres-{index + 1}"
        probes.append(PostgresProbe(dsn, name=name, timeout=timeout))
    if args.admin_dsn:
        admin = AdminConnection(args.admin_dsn)
        probes.append(SaturationProbe(admin, timeout=timeout, owns_admin=True))
    for index, url in enumerate(args.redis):
        probes.append(RedisProbe(url, name="redis" if index == 0 else f"redis-{index + 1}",
                                 timeout=min(timeout, 10.0)))  # fmt: skip
    probes += tls_probes(args.tls, timeout=timeout, cafile=args.cafile, critical=True)
    probes += [HttpProbe(url, timeout=timeout, critical=True) for url in args.http]
    return probes


def _registry(args: argparse.Namespace) -> HealthRegistry:
    config = args.config or (None if _any_flag(args) else os.environ.get(CONFIG_ENV))
    registry = load_config(config) if config else HealthRegistry(hooks=[])
    for probe in _probes_from_flags(args):
        registry.add(probe)
    if not registry.probes:
        args.parser.error(
            "nothing to check: pass --config FILE (or set "
            f"{CONFIG_ENV}), probes such as --postgres DSN, or --url of a running app"
        )
    return registry


def _any_flag(args: argparse.Namespace) -> bool:
    return bool(args.postgres or args.admin_dsn or args.redis or args.tls or args.http)


def _observed(check: Any) -> str:
    result = check.result
    if result is None or result.observed_value is None:
        return "-"
    return f"{result.observed_value} {result.observed_unit or ''}".rstrip()


def _print_report(report: HealthReport) -> None:
    rows = [["status", "check", "critical", "observed", "message"]]
    for check in report.checks:
        rows.append([check.status.value, check.key, "yes" if check.critical else "no",
                     _observed(check), check.message or "-"])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
              + "  " + row[4])  # fmt: skip
    print(f"\nreadiness: {report.status.value} (HTTP {report.http_status})")


def _exit_status(status: Status, fail_on_warn: bool) -> int:
    if status is Status.FAIL or (fail_on_warn and status is Status.WARN):
        return 1
    return 0


def _check_url(args: argparse.Namespace) -> int:
    """Ask a running app's readiness endpoint and judge its answer."""
    request = urllib.request.Request(args.url, headers={"accept": "application/health+json"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            code, body = response.status, response.read()
    except urllib.error.HTTPError as answer:
        code, body = answer.code, answer.read()
        answer.close()
    except (OSError, ValueError) as error:
        print(f"sendguard: {args.url} did not answer: {error}", file=sys.stderr)
        return 1
    try:
        document = json.loads(body)
        status = Status(document.get("status"))
    except (ValueError, AttributeError):
        print(f"sendguard: {args.url} answered {code} without a health+json status")
        return 1
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print(f"{args.url}: {status.value} (HTTP {code})")
        if document.get("output"):
            print(document["output"])
    if code >= 400:  # the draft: fail answers 4xx or 5xx, whatever the body says
        status = Status.FAIL
    return _exit_status(status, args.fail_on_warn)


def _check(args: argparse.Namespace) -> int:
    if args.url:
        if args.config or _any_flag(args):
            args.parser.error("--url asks a running app; it does not mix with probes or --config")
        return _check_url(args)
    try:
        registry = _registry(args)
    except ConfigError as error:
        args.parser.error(str(error))
    try:
        report = registry.check_now()
    finally:
        registry.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    return _exit_status(report.status, args.fail_on_warn)


def _beat(args: argparse.Namespace) -> int:
    url = args.store or os.environ.get(STORE_ENV, "")
    if not url.startswith(REDIS_SCHEMES):
        args.parser.error(f"heartbeats live in Redis: pass --store redis://HOST:6379/0 or set "
                          f"{STORE_ENV}")  # fmt: skip
    import redis

    store = RedisHeartbeats(url, timeout=2.0)
    try:
        store.beat(args.name)
    except redis.RedisError as error:
        print(f"sendguard: the heartbeat store did not answer: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"heartbeat recorded for {args.name!r}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``health`` command and its subcommands."""
    group = commands.add_parser("health", help="run health probes once; record heartbeats")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="run the probes once and exit 0 (pass or warn), 1 (fail) or 2 (usage)",
        description="Run every probe once, concurrently, each bounded by its timeout. Exit 0 "
        "when readiness passes or warns, 1 when it fails, 2 on a usage or config error.",
    )
    check.add_argument("--config", metavar="FILE", help=f"a TOML file (default: ${CONFIG_ENV})")
    check.add_argument(
        "--postgres",
        action="append",
        default=[],
        metavar="DSN",
        help="readiness through a fresh connection (the app's role)",
    )
    check.add_argument(
        "--admin-dsn",
        metavar="DSN",
        help="connection saturation over a role allowed into reserved slots",
    )
    check.add_argument("--redis", action="append", default=[], metavar="URL", help="PING + memory")
    check.add_argument(
        "--tls",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="certificate validity, hostname and days left",
    )
    check.add_argument("--cafile", metavar="FILE", help="CA certificates to trust for --tls")
    check.add_argument(
        "--http",
        action="append",
        default=[],
        metavar="URL",
        help="an endpoint's status and latency",
    )
    check.add_argument(
        "--url", metavar="URL", help="ask a running app's readiness endpoint instead of probing"
    )
    check.add_argument(
        "--timeout",
        type=parse_duration,
        default=5.0,
        metavar="DURATION",
        help="per-probe timeout for probes given as flags (default 5s)",
    )
    check.add_argument("--json", action="store_true", help="print the health+json document")
    check.add_argument("--fail-on-warn", action="store_true", help="exit 1 on warn as well")
    check.set_defaults(run=_check, parser=check)  # fmt: skip
    beat = actions.add_parser("beat", help="record a heartbeat (end a cron job with it)")
    beat.add_argument("name", metavar="NAME", help="the job's name, as its HeartbeatProbe has it")
    beat.add_argument("--store", metavar="URL", help=f"Redis (default: ${STORE_ENV})")
    beat.set_defaults(run=_beat, parser=beat)
