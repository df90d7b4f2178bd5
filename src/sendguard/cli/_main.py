"""`main`: the argument parser, the command groups it dispatches to, and the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sendguard.cli._breaker import register as register_breaker
from sendguard.cli._cron import register as register_cron
from sendguard.cli._db import register as register_db
from sendguard.cli._drill import register as register_drill
from sendguard.cli._health import register as register_health
from sendguard.cli._jobs import register as register_jobs
from sendguard.drills import get_drill, render, render_headline

__all__ = ["build_parser", "main"]

ABOUT = """\
sendguard puts reliability guards in front of web apps and email-sending pipelines:
circuit breakers (per route, tenant and provider, shared by every worker through Redis),
rate limits and bulkheads on every route, jittered retries with budgets, lean job
payloads and idempotent sends, and health probes that see what users see. Each guard answers
a real incident from email platforms' postmortems, and each has a drill that replays
its incident twice, without the guard and with it, on simulated time.

Here is the first: a primary email provider that slows down, then stops answering, then
comes back, while a pool of senders works through 2,000 messages with a secondary
provider to fail over to.
"""


def _demo(args: argparse.Namespace) -> int:
    """Say what sendguard is, run the provider-outage drill, and sum it up."""
    print(ABOUT)
    result = get_drill("provider-outage").run()
    print(render(result))
    print()
    print(render_headline(result))
    return 0 if result.passed else 1


def build_parser() -> argparse.ArgumentParser:
    """The ``sendguard`` parser; each subcommand stores its handler as ``run``."""
    parser = argparse.ArgumentParser(
        prog="sendguard",
        description="Reliability guards for web apps and email pipelines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser("demo", help="what sendguard is, shown by replaying an outage")
    demo.set_defaults(run=_demo, parser=demo)
    register_drill(commands)
    register_breaker(commands)
    register_health(commands)
    register_db(commands)
    register_jobs(commands)
    register_cron(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sendguard`` command with `argv` (default: ``sys.argv[1:]``); return its status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        status: int = args.run(args)
    except SystemExit as exc:  # argparse (and `parser.error` in handlers) exit this way
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2
    sys.stdout.flush()
    return status
