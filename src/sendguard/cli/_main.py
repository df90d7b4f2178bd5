"""`main`: the argument parser, the command groups it dispatches to, and the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sendguard.cli._breaker import register as register_breaker
from sendguard.cli._cron import register as register_cron
from sendguard.cli._db import register as register_db
from sendguard.cli._drill import register as register_drill
from sendguard.cli._drill import run_all
from sendguard.cli._health import register as register_health
from sendguard.cli._jobs import register as register_jobs
from sendguard.drills import DRILLS, get_drill, render, render_headline

__all__ = ["build_parser", "main"]

ABOUT = """\
sendguard puts reliability guards in front of web apps and email-sending pipelines:
circuit breakers (per route, tenant and provider, shared by every worker through Redis),
rate limits and bulkheads on every route, jittered retries with budgets, lean job
payloads and idempotent sends, and health probes that see what users see. Each guard answers
a real incident from email platforms' postmortems, and each has a drill that replays
its incident twice, without the guard and with it.

First, the reference sending pipeline (sendguard.pipeline), built only from those guards,
on embedded defaults: an API, a worker, and two real SMTP servers on loopback. A newsletter
goes to 200 recipients while the primary server drops connections after DATA, defers some
messages, and then goes down.
"""

DRILLS_INTRO = """\
Then every drill, each replaying its incident without the guard and with it
(`sendguard drill NAME` prints one drill's whole table):
"""


def _demo(args: argparse.Namespace) -> int:
    """Say what sendguard is, run the reference pipeline with faults, then every drill."""
    print(ABOUT)
    try:
        from sendguard.pipeline import run_demo

        sent = run_demo(sys.stdout)
    except ImportError as missing:  # a core-only install: no starlette / aiosmtpd
        print(
            f"(the pipeline needs packages this install lacks: {missing}; "
            "pip install 'sendguard[pipeline]')\n"
        )
        result = get_drill("provider-outage").run()
        print(render(result))
        print()
        print(render_headline(result))
        sent = 0 if result.passed else 1
    print()
    print(DRILLS_INTRO)
    drilled = run_all(list(DRILLS.values()), tables=False)
    return sent or drilled


def build_parser() -> argparse.ArgumentParser:
    """The ``sendguard`` parser; each subcommand stores its handler as ``run``."""
    parser = argparse.ArgumentParser(
        prog="sendguard",
        description="Reliability guards for web apps and email pipelines.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo", help="what sendguard is: the reference pipeline under faults, then every drill"
    )
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
