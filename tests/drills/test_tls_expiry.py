"""The tls-expiry drill: every broken tracking domain is reported, the main-site check
alone misses them all."""

from __future__ import annotations

import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills.tls_expiry import DOMAINS, DRILL


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return DRILL.run()


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []


def test_the_main_site_check_misses_every_broken_domain(result: DrillResult) -> None:
    broken = sum(d.broken for d in DOMAINS)
    assert broken == 5
    found = result.figure("broken_found")
    assert (found.unguarded, found.guarded) == (0, broken)
    assert result.figure("broken_missed").unguarded == broken
    assert result.figure("expiring_flagged").unguarded == 0
    assert result.figure("detect_s").unguarded is None
    assert result.figure("false_alarms").guarded == 0


def test_the_table_shows_both_runs(result: DrillResult) -> None:
    text = render(result)
    assert text.startswith("drill tls-expiry: tracking domains")
    assert "broken domains missed" in text
    assert text.rstrip().endswith("PASS: 4 of 4 targets met")
