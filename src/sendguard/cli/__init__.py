"""The ``sendguard`` command: drills, breaker controls and the demo.

    sendguard demo
    sendguard drill provider-outage ; sendguard drill --all ; sendguard drill --list
    sendguard breaker list --store redis://localhost:6379/0
    sendguard breaker open "route:GET /v1/emails/{id}/analytics" --for 30m --reason "storm"

Exit status: 0 when everything asked for succeeded (every drill target met), 1 when it
did not (a target missed, the store unreachable), 2 on a usage error. Each command group
lives in its own module with a ``register(commands)`` function; `main` wires them up.
"""

from sendguard.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
