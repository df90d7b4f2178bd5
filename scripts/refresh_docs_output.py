"""Store the real output the docs show: every drill's, and the pipeline demo's.

The incident pages (``docs/incidents/<drill>.md``) and the tutorial include command
output from files through snippet includes, rather than copies pasted in by hand. This
script makes those files: it runs ``sendguard drill NAME`` for every drill in the
registry into ``docs/incidents/output/<drill>.txt``, and the pipeline demo (what
``sendguard demo`` runs, `sendguard.pipeline.run_demo`) into ``docs/output/demo.txt``,
one at a time and at full scale. Run it after changing a drill or the demo, then
rebuild the site:

    .venv/bin/python scripts/refresh_docs_output.py                # everything
    .venv/bin/python scripts/refresh_docs_output.py tls-expiry     # one drill
    .venv/bin/python scripts/refresh_docs_output.py demo           # the demo

A run that fails (a drill that cannot run here or misses a target, a demo that does not
pass) keeps the old file; the script says why and exits 1. ``tests/docs/test_site.py``
fails when a stored output no longer matches its drill.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sendguard.drills import DRILLS

ROOT = Path(__file__).resolve().parents[1]
DRILL_OUTPUT = ROOT / "docs" / "incidents" / "output"
DEMO_OUTPUT = ROOT / "docs" / "output" / "demo.txt"
DEMO = "demo"
_RUN_DEMO = "import sys; from sendguard.pipeline import run_demo; sys.exit(run_demo(sys.stdout))"


def drill_output(name: str) -> Path:
    """Where the output of drill `name` is stored."""
    return DRILL_OUTPUT / f"{name}.txt"


def refresh(name: str) -> bool:
    """Run drill `name` (or the demo) once and store its stdout; False if it did not pass."""
    if name == DEMO:
        command, target = [sys.executable, "-c", _RUN_DEMO], DEMO_OUTPUT
    else:
        command, target = [sys.executable, "-m", "sendguard", "drill", name], drill_output(name)
    # Everything runs on embedded defaults: never on a store the developer has configured.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SENDGUARD_")}
    started = time.monotonic()
    proc = subprocess.run(
        command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600, check=False
    )
    took = time.monotonic() - started
    if proc.returncode != 0 or not proc.stdout.strip():
        print(f"{name}: exit {proc.returncode} after {took:.1f} s; kept the old output")
        print(proc.stdout + proc.stderr, file=sys.stderr)
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(proc.stdout, encoding="utf-8")
    print(f"{name}: stored {target.relative_to(ROOT)} ({took:.1f} s)")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Refresh what `argv` names (default: every drill, then the demo); the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"drills or {DEMO!r} (default: all of them)"
    )
    args = parser.parse_args(argv)
    known = [*DRILLS, DEMO]
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"nothing called {', '.join(unknown)}; known: {', '.join(known)}")
    results = [refresh(name) for name in args.names or known]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
