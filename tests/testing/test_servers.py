"""The real-server test bed itself, against real redis-server and Postgres binaries."""

from __future__ import annotations

import os
import pwd
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from sendguard.testing import _server_base
from sendguard.testing.servers import (
    PostgresServer,
    RedisServer,
    ServerBinaryMissing,
    ServerStartError,
)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


# --- Redis ---------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_answers_ping(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    assert redis_server.is_running
    assert redis_server.ping()
    assert redis_client.ping() is True
    assert redis_client.config_get("save") == {"save": ""}  # no persistence
    assert redis_client.config_get("appendonly") == {"appendonly": "no"}
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.mark.redis
def test_redis_url_starts_clean(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("sendguard:test", "1")  # the next test's FLUSHALL removes it


@pytest.mark.redis
def test_redis_stop_makes_connections_fail_fast(restartable_redis: RedisServer) -> None:
    url = restartable_redis.url
    restartable_redis.stop(cleanup=False)
    assert not restartable_redis.is_running
    assert not restartable_redis.ping()
    client = redis.Redis.from_url(url, socket_connect_timeout=2, retry_on_timeout=False)
    try:
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert time.monotonic() - started < 1.0  # refused at once, no hang
    finally:
        client.close()


@pytest.mark.redis
def test_redis_restart_keeps_port_and_answers(restartable_redis: RedisServer) -> None:
    port = restartable_redis.port
    with redis.Redis.from_url(restartable_redis.url) as client:
        client.set("k", "v")
    restartable_redis.restart()
    assert restartable_redis.port == port
    assert restartable_redis.is_running
    with redis.Redis.from_url(restartable_redis.url) as client:
        assert client.ping() is True
        assert client.get("k") is None  # no persistence, by design


@pytest.mark.redis
def test_redis_stop_then_start_reuses_port_and_cleans_up(restartable_redis: RedisServer) -> None:
    port, log = restartable_redis.port, restartable_redis.log_path
    assert log is not None
    assert log.exists()
    restartable_redis.stop()
    assert not log.parent.exists()
    assert restartable_redis not in _server_base._live
    restartable_redis.start()
    assert restartable_redis.port == port
    assert restartable_redis.ping()


def test_redis_start_failure_names_the_cause_from_the_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(port=taken.getsockname()[1])
        with pytest.raises(ServerStartError, match=r"(?s)did not answer PING.*in use"):
            server.start()
        server.stop()
    assert not server.is_running


# --- Postgres ------------------------------------------------------------------------------


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    with PostgresServer(max_connections=17, superuser_reserved_connections=2) as server:
        yield server


@pytest.mark.postgres
def test_postgres_answers_select_1(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn, connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_user").fetchone() == ("sendguard",)


@pytest.mark.postgres
def test_postgres_reports_its_version(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute("show server_version_num").fetchone()
    assert row is not None
    assert postgres_server.version == int(row[0]) // 10000
    assert postgres_server.version >= 12


@pytest.mark.postgres
def test_postgres_runs_unprivileged(postgres_server: PostgresServer) -> None:
    pid = postgres_server.pid
    assert pid is not None
    uid = _uid_of(pid)
    assert uid != 0  # Postgres refuses root; under root the test bed drops to another user
    assert uid == pwd.getpwnam(postgres_server.os_user).pw_uid
    if os.geteuid() != 0:
        assert uid == os.geteuid()


@pytest.mark.postgres
def test_postgres_settings_are_applied(private_postgres: PostgresServer) -> None:
    with psycopg.connect(private_postgres.dsn) as conn:
        show = {
            name: conn.execute(f"show {name}").fetchone()
            for name in ("max_connections", "superuser_reserved_connections", "fsync",
                         "synchronous_commit", "full_page_writes", "listen_addresses")
        }  # fmt: skip
    assert show == {
        "max_connections": ("17",),
        "superuser_reserved_connections": ("2",),
        "fsync": ("off",),
        "synchronous_commit": ("off",),
        "full_page_writes": ("off",),
        "listen_addresses": ("127.0.0.1",),
    }


@pytest.mark.postgres
def test_postgres_restart_keeps_port_and_data(private_postgres: PostgresServer) -> None:
    port = private_postgres.port
    with psycopg.connect(private_postgres.dsn, autocommit=True) as conn:
        conn.execute("create table survives (x int)")
    private_postgres.restart()
    assert private_postgres.port == port
    assert private_postgres.is_running
    with psycopg.connect(private_postgres.dsn) as conn:
        assert conn.execute("select count(*) from survives").fetchone() == (0,)


@pytest.mark.postgres
def test_postgres_stop_refuses_connections_and_removes_the_cluster(
    private_postgres: PostgresServer,
) -> None:
    data_dir = private_postgres.data_dir
    assert data_dir is not None
    assert (data_dir / "PG_VERSION").exists()
    private_postgres.stop()
    assert not private_postgres.is_running
    assert not data_dir.parent.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(private_postgres.dsn, connect_timeout=2)


# --- missing binaries ------------------------------------------------------------------------


def test_missing_redis_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ServerBinaryMissing) as info:
        RedisServer(search_path=[tmp_path])
    message = str(info.value)
    assert "redis-server not found" in message
    assert str(tmp_path) in message
    assert "apt-get install redis-server" in message


def test_missing_redis_with_empty_search_path_says_so() -> None:
    with pytest.raises(ServerBinaryMissing, match="search path is empty"):
        RedisServer(search_path=[])


def test_missing_redis_explicit_binary(tmp_path: Path) -> None:
    with pytest.raises(ServerBinaryMissing, match="apt-get install redis-server"):
        RedisServer(binary=tmp_path / "redis-server")


def test_missing_postgres_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(ServerBinaryMissing) as info:
        PostgresServer(search_path=[tmp_path])
    message = str(info.value)
    assert "initdb" in message
    assert str(tmp_path) in message
    assert "apt-get install postgresql" in message
