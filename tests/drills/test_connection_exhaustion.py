"""The connection-exhaustion drill on a throwaway Postgres: the guard sees it, names it,
gets in and recovers by ending only the leak's sessions; the static check never notices."""

from __future__ import annotations

import psycopg
import pytest

from sendguard.drills import DrillResult, render
from sendguard.drills import connection_exhaustion as drill
from sendguard.testing import servers

pytestmark = pytest.mark.postgres
SCALE = 0.1


@pytest.fixture(scope="module")
def result() -> DrillResult:
    return drill.DRILL.run(SCALE)


def test_guarded_run_meets_every_target(result: DrillResult) -> None:
    assert [t.description for t in result.targets if not t.passed] == []


def test_the_static_check_stays_green_while_sendguard_answers_503(result: DrillResult) -> None:
    static, reported = result.figure("static_status"), result.figure("reported_status")
    assert (static.unguarded, static.guarded) == (200, 200)
    assert (reported.unguarded, reported.guarded) == (200, 503)
    assert result.figure("detect_s").unguarded is None
    detect = result.figure("detect_s").guarded
    assert detect is not None and detect <= 2 * drill.INTERVAL


def test_only_the_reserved_path_gets_in_and_db_kill_spares_the_worker(result: DrillResult) -> None:
    assert (result.figure("admin_ok").unguarded, result.figure("admin_ok").guarded) == (0, 1)
    ended = result.figure("sessions_ended")
    slots = drill.max_connections(SCALE) - drill.RESERVED
    assert ended.unguarded == slots  # the restart ends the leak and the worker
    assert ended.guarded == slots - 2  # the leak only (the worker and the admin hold one each)
    verdicts = {t.metric.key: t.passed for t in result.unguarded_targets}
    assert verdicts == {"reported_status": False, "cause_named": False, "detect_s": False,
                        "admin_ok": False, "recover_s": True, "sessions_ended": False}  # fmt: skip


def test_the_table_shows_both_runs(result: DrillResult) -> None:
    text = render(result)
    assert text.startswith("drill connection-exhaustion (scale 0.1):")
    assert "static health check answered" in text
    assert text.rstrip().endswith("PASS: 6 of 6 targets met")


def test_missing_binaries_are_named_with_the_way_out(monkeypatch) -> None:
    def missing(**_: object) -> servers.PostgresServer:
        raise servers.ServerBinaryMissing("initdb and pg_ctl not found; install postgresql")

    monkeypatch.delenv(drill.DSN_ENV, raising=False)
    monkeypatch.setattr(servers, "PostgresServer", missing)
    with pytest.raises(drill.PostgresUnavailable) as caught:
        drill.replay(guarded=True, scale=SCALE)
    assert "initdb and pg_ctl not found" in str(caught.value)
    assert drill.DSN_ENV in str(caught.value)


def test_a_given_dsn_is_used_instead_of_a_throwaway_cluster(monkeypatch, postgres_dsn) -> None:
    def forbidden(**_: object) -> servers.PostgresServer:
        raise AssertionError("no cluster should be started when a DSN is given")

    monkeypatch.setattr(servers, "PostgresServer", forbidden)
    monkeypatch.setenv(drill.DSN_ENV, postgres_dsn)
    with drill._target(SCALE) as target:
        assert target.superuser_dsn == postgres_dsn
        assert f"user={drill.APP_ROLE}" in target.app_dsn
        assert target.restart is None  # never restart a server we did not start
        psycopg.connect(target.app_dsn).close()
