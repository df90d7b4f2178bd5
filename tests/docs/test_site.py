"""The docs site builds with ``mkdocs build --strict``, and its incident pages stay true.

The build test runs the real build into a temporary directory: strict mode turns every
warning (a broken link or anchor, a missing snippet file, a griffe docstring problem in
the API reference) into a failure. The other tests need no build: every drill in the
registry has an incident page that includes its stored output, and that output is the
drill's current output (its first line, every metric label and unit in order, its
targets), so a drill that changes without `scripts/refresh_docs_output.py` being run
fails here. The same goes for the pipeline demo's output, which the tutorial shows.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path

import pytest

from sendguard.drills import DRILLS
from tests.docs._examples import tool

ROOT = Path(__file__).resolve().parents[2]
INCIDENTS = ROOT / "docs" / "incidents"
OUTPUT = INCIDENTS / "output"
REFRESH = ROOT / "scripts" / "refresh_docs_output.py"


def refresh_hint(name: str) -> str:
    return f"run `.venv/bin/python {REFRESH.relative_to(ROOT)} {name}` and commit the file"


def incident_pages() -> set[str]:
    """The drill names that have a page under docs/incidents/."""
    return {p.stem for p in INCIDENTS.glob("*.md") if p.name != "index.md"}


# --- the build ---------------------------------------------------------------------------


@pytest.mark.slow
def test_the_site_builds_with_strict(tmp_path):
    site = tmp_path / "site"
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}  # the theme's banner, not a warning
    proc = subprocess.run(
        [tool("mkdocs"), "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", site],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for page in (
        "index.html",
        "tutorial/index.html",
        "breakers/index.html",
        "incidents/index.html",
        "incidents/provider-outage/index.html",
        "reference/breakers/index.html",
        "reference/sendguard/index.html",
    ):
        assert (site / page).is_file(), f"the build made no {page}"

    # The incident page shows the stored output itself, not the include line.
    incident = html.unescape((site / "incidents/provider-outage/index.html").read_text("utf-8"))
    assert "--8<--" not in incident
    assert "calls wasted on the sick primary" in incident
    # The reference is generated from the docstrings.
    reference = (site / "reference/breakers/index.html").read_text("utf-8")
    assert 'id="sendguard.breakers.BreakerRegistry"' in reference
    assert "Creates and keeps" in reference  # BreakerRegistry's docstring


# --- incident pages and their drills -------------------------------------------------------


def test_every_drill_has_an_incident_page_and_every_page_a_drill():
    pages = incident_pages()
    assert set(DRILLS) <= pages, f"drills without a page: {sorted(set(DRILLS) - pages)}"
    assert pages <= set(DRILLS), f"pages for no drill: {sorted(pages - set(DRILLS))}"


def test_every_incident_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [name for name in sorted(incident_pages()) if f"incidents/{name}.md" not in config]
    assert not missing, f"incident pages missing from the nav in mkdocs.yml: {missing}"


@pytest.mark.parametrize("name", sorted(incident_pages()))
def test_each_incident_page_includes_its_drill_output(name):
    page = (INCIDENTS / f"{name}.md").read_text(encoding="utf-8")
    assert f'$ sendguard drill {name}\n--8<-- "docs/incidents/output/{name}.txt"\n' in page
    assert (OUTPUT / f"{name}.txt").is_file(), refresh_hint(name)


@pytest.mark.parametrize("name", sorted(DRILLS))
def test_stored_output_is_the_drills_current_output(name):
    drill = DRILLS[name]
    stored = OUTPUT / f"{name}.txt"
    assert stored.is_file(), f"no stored output for {name}: {refresh_hint(name)}"
    lines = stored.read_text(encoding="utf-8").splitlines()
    stale = f"docs/incidents/output/{name}.txt is stale: {refresh_hint(name)}"
    assert lines, stale
    assert lines[0] == f"drill {name}: {drill.incident}", stale

    # The figures: one row per metric, in order, each with its label and unit.
    header = lines.index(next(line for line in lines if line.startswith("figure ")))
    rows = lines[header + 2 : lines.index("", header)]
    assert len(rows) == len(drill.metrics), stale
    for row, metric in zip(rows, drill.metrics, strict=True):
        assert re.match(rf"{re.escape(metric.label)} +{re.escape(metric.unit)} ", row), (
            f"{stale}\n  row {row!r} is not {metric.label!r} in {metric.unit!r}"
        )

    # The targets: one line per goal, all met, and the verdict.
    targets = lines.index("targets (guarded run):")
    verdicts = [line for line in lines[targets + 3 :] if re.match(r"(PASS|FAIL)  ", line)]
    assert len(verdicts) == len(drill.goals), stale
    assert all(line.startswith("PASS") for line in verdicts), f"a stored run failed: {stale}"
    goals = len(drill.goals)
    assert lines[-1] == f"PASS: {goals} of {goals} targets met", stale


def test_the_stored_demo_output_is_a_passing_run_of_the_current_demo():
    stored = ROOT / "docs" / "output" / "demo.txt"
    assert stored.is_file(), f"no stored demo output: {refresh_hint('demo')}"
    lines = stored.read_text(encoding="utf-8").splitlines()
    stale = f"docs/output/demo.txt is stale: {refresh_hint('demo')}"
    assert lines and lines[0].startswith("sendguard demo: "), stale
    for expected in ("state      messages", "sink       received", "duplicates at the sinks: 0"):
        assert expected in lines, f"{stale}\n  no line {expected!r}"
    checks = [line for line in lines if re.match(r"(PASS|FAIL)  ", line)]
    assert checks, stale
    assert all(line.startswith("PASS") for line in checks), f"a stored demo failed: {stale}"
    assert re.fullmatch(r"PASS in [0-9.]+s", lines[-1]), stale
    tutorial = (ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8")
    assert '--8<-- "docs/output/demo.txt"' in tutorial


# --- the script that stores the output -------------------------------------------------------


def test_the_refresh_script_passes_ruff():
    for args in (["check"], ["format", "--check"]):
        run = subprocess.run(
            [tool("ruff"), *args, str(REFRESH)], cwd=ROOT, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
def test_the_refresh_script_passes_mypy_strict():
    run = subprocess.run(
        [tool("mypy"), "--strict", "--no-error-summary", str(REFRESH)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
