"""The Celery adapter: checked publishes on the Redis broker, run by a real worker process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sendguard.jobs import PayloadRejected

pytestmark = pytest.mark.redis
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def celery_env(redis_server) -> Iterator[tuple[object, str]]:
    """The test app bound to the shared Redis, and a real worker process for it."""
    url = redis_server.url.replace("/0", "/3")  # a database of its own (others FLUSHALL)
    from tests.jobs import _celery_app

    _celery_app.app.conf.broker_url = url
    _celery_app.app.conf.result_backend = url
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.jobs._celery_app",
            "worker",
            "--pool=solo",
            "-Q",
            "lean",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SENDGUARD_TEST_BROKER": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield _celery_app, url
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        assert worker.returncode == 0  # a clean warm shutdown


def test_a_lean_task_is_published_and_run_by_the_worker(celery_env):
    app, _ = celery_env
    result = app.send_batch.delay(7, [1, 2, 3])
    assert result.get(timeout=30) == {"email_id": 7, "recipients": 3}


def test_a_retry_publishes_through_the_checked_path(celery_env):
    app, _ = celery_env
    assert app.flaky.delay(1).get(timeout=30) == "retried with 2"


def test_fat_payloads_are_refused_before_anything_reaches_the_broker(celery_env):
    app, url = celery_env
    from celery import group  # type: ignore[import-untyped]

    client = redis.Redis.from_url(url)  # "bulk" has no worker: what is published stays
    try:
        with pytest.raises(PayloadRejected) as refused:
            app.send_batch.delay({"body": "x" * 100_000}, [1])
        assert (refused.value.function, refused.value.queue) == ("tests.send_batch", "lean")
        with pytest.raises(PayloadRejected) as routed:
            app.send_batch.apply_async((object(), [1]), queue="bulk")
        assert (routed.value.queue, routed.value.path) == ("bulk", "args[0]")
        with pytest.raises(PayloadRejected):  # a group publishes its signatures in order
            group(
                app.send_batch.s({"b": "x" * 100_000}, [2]), app.send_batch.s(1, [1])
            ).apply_async(queue="bulk")
        assert client.llen("bulk") == 0
        app.send_batch.apply_async((1, [1]), queue="bulk")  # the control: a lean one lands
        assert client.llen("bulk") == 1
    finally:
        client.delete("bulk")
        client.close()
