"""Job guards measured: the payload check, and the backlog inspector on a 500 MB backlog.

    .venv/bin/python benchmarks/jobs.py            # full run (~1 minute, ~2 GB of RAM)
    .venv/bin/python benchmarks/jobs.py --quick    # a tenth of the backlog, for a smoke test

What is measured:

1. The payload check (`PayloadGuard.check`, default policy), in microseconds per call
   (`timeit`, gc off, best of the interleaved repeats; the median is printed too):
   ``lean_accept_us``, an email id and 100 recipient ids (UUID strings), accepted;
   ``fat_reject_us``, the incident's 5 MB ``Email`` object graph (sixty columns, four
   rendered bodies, an author and attachments as objects), refused (the exception is
   raised and caught inside the timing); ``fat_dict_reject_us``, the same data as plain
   dicts and lists, refused by the size budget's early exit; ``json_dumps_fat_us``,
   ``json.dumps`` of those dicts, what serialising the payload costs.
2. A backlog in a real redis-server (`sendguard.testing.servers.RedisServer`) written
   through RQ itself (pickle, RQ's default): 10,000 jobs, 300 of them the incident's
   ~1.5 MB ``send_email_to`` jobs in the scheduled registry (random bytes, which RQ's
   zlib cannot shrink), the rest small jobs queued, failed and finished; over 500 MB in
   all (``backlog_mb``, from ``INFO memory``). Then, each in a fresh child process that
   reports its own peak RSS (``VmHWM``) at exit: ``sendguard jobs inspect``
   (``inspect_10k_s`` is the inspection's own time, ``inspect_process_s`` the whole
   command), and the incident's laptop script, RQ's ``Job.fetch_many`` over every id
   (``fetch_many_peak_rss_mb``).

The last stdout line is one JSON object with those keys and ``targets_met``:
``fat_reject_us`` <= 100 and <= 1 % of ``json_dumps_fat_us``; ``inspect_peak_rss_mb`` <= 64.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis
from rq import Queue
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from benchmarks._util import emit_json, run_python_measured, time_per_call
from sendguard.jobs import PayloadGuard, PayloadRejected
from sendguard.testing.servers import RedisServer

ROOT = Path(__file__).resolve().parents[1]
MB = 1e6
FAT_JOBS, FAT_BYTES = 300, 1_600_000
"""The incident's fan-out: 300 jobs of one large email."""
SMALL_JOBS, SMALL_BYTES = 9_700, 6_000


@dataclasses.dataclass
class Author:
    id: int
    name: str
    settings: dict[str, str]


@dataclasses.dataclass
class Attachment:
    id: int
    filename: str
    size: int


@dataclasses.dataclass
class Email:
    """The ORM object of incident #2: sixty columns, four of them the rendered body."""

    id: int
    subject: str
    body_html: str
    body_text: str
    body_markdown: str
    body_amp: str
    author: Author
    attachments: list[Attachment]
    columns: dict[str, str]


def fat_email() -> Email:
    body = ("Dear reader, this week in sending: " * 40_000)[:1_250_000]  # 4 x 1.25 MB
    return Email(
        id=4242,
        subject="Our biggest issue yet",
        body_html=f"<p>{body}</p>",
        body_text=body,
        body_markdown=f"*{body}*",
        body_amp=f"<amp>{body}</amp>",
        author=Author(7, "Penelope", {"theme": "dark"}),
        attachments=[Attachment(n, f"file-{n}.pdf", 1000 * n) for n in range(20)],
        columns={f"column_{n}": f"value {n}" for n in range(52)},
    )


def payload_timings(number: int, repeat: int) -> dict[str, Any]:
    """Microseconds per check (best and median of the repeats)."""
    guard = PayloadGuard(hooks=[])
    email = fat_email()
    as_dicts = dataclasses.asdict(email)
    lean_args = (email.id, [str(uuid.UUID(int=n)) for n in range(100)])
    assert len(json.dumps(as_dicts)) > 5 * MB

    def reject(args: tuple[object, ...]) -> None:
        try:
            guard.check("app.jobs.send_email_to", args, queue="five_minutes")
        except PayloadRejected:
            return
        raise AssertionError("a fat payload was accepted")

    env = {
        "guard": guard,
        "lean": lean_args,
        "reject": reject,
        "fat": (email, lean_args[1]),
        "fat_dict": (as_dicts, lean_args[1]),
        "json": json,
        "as_dicts": as_dicts,
    }
    timings = time_per_call(
        {
            "lean_accept": ("guard.check('app.jobs.send_email_to', lean, queue='q')", env),
            "fat_reject": ("reject(fat)", env),
            "fat_dict_reject": ("reject(fat_dict)", env),
        },
        number=number,
        repeat=repeat,
    )
    # json.dumps of 5 MB takes milliseconds: a few calls per repeat are enough.
    timings |= time_per_call(
        {"json_dumps_fat": ("json.dumps(as_dicts)", env)}, number=3, repeat=repeat
    )
    return {name: (t.best / 1000, t.median / 1000) for name, t in timings.items()}


def build_backlog(client: redis.Redis, scale: float) -> int:
    """The incident's backlog, written through RQ; returns its job count."""
    emails = Queue("five_minutes", connection=client)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=6)
    fat = round(FAT_JOBS * scale)
    for n in range(fat):
        emails.enqueue_at(
            later,
            "app.jobs.send_email_to",
            os.urandom(FAT_BYTES),
            n,
            description=f"app.jobs.send_email_to(<Email 4242>, batch {n})",
        )
    small = round(SMALL_JOBS * scale)
    datas = [
        Queue.prepare_data("app.jobs.track_open", (os.urandom(SMALL_BYTES), n))
        for n in range(small)
    ]
    for start in range(0, small, 500):
        emails.enqueue_many(datas[start : start + 500])
    moved = emails.get_job_ids(0, small // 5 - 1)  # a fifth failed, a fifth finished
    failed, finished = moved[: len(moved) // 2], moved[len(moved) // 2 :]
    for ids, registry, status in (
        (failed, FailedJobRegistry(queue=emails), JobStatus.FAILED),
        (finished, FinishedJobRegistry(queue=emails), JobStatus.FINISHED),
    ):
        pipe = client.pipeline()
        for job_id in ids:
            pipe.lrem(emails.key, 0, job_id)
            pipe.hset(f"rq:job:{job_id}", "status", status.value)
            pipe.zadd(registry.key, {job_id: 10**10})
        pipe.execute()
    return fat + small


INSPECT = """
import argparse, json, sys
from sendguard.cli._jobs import register
parser = argparse.ArgumentParser()
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(["jobs", "inspect", "--redis", sys.argv[1], "--json", "--top", "10"])
sys.exit(args.run(args))
"""

FETCH_MANY = """
import sys, redis
from rq import Queue
from rq.job import Job
client = redis.Redis.from_url(sys.argv[1])
queue = Queue("five_minutes", connection=client)
ids = (queue.get_job_ids() + queue.scheduled_job_registry.get_job_ids()
       + queue.failed_job_registry.get_job_ids() + queue.finished_job_registry.get_job_ids())
jobs = Job.fetch_many(ids, connection=client)   # what the incident's laptop script did
print(len(jobs), sum(len(j.data) for j in jobs if j is not None))
"""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last line printed is the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the backlog")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")

    times = payload_timings(number=200 if args.quick else 2000, repeat=5)
    for name, (best, median) in times.items():
        print(f"{name:>18}: {best:10.2f} us (median {median:.2f})")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        jobs = build_backlog(client, scale)
        backlog_mb = int(client.info("memory")["used_memory"]) / MB
        print(f"backlog: {jobs:,} jobs, {backlog_mb:,.0f} MB in Redis")
        inspect = run_python_measured(INSPECT, server.url, env=env)
        report = json.loads(inspect.stdout)
        assert report["jobs"] == jobs, report["jobs"]
        print(
            f"sendguard jobs inspect: {report['seconds']:.2f}s inspecting "
            f"({inspect.seconds:.2f}s in all), peak RSS {inspect.peak_rss_mb:.1f} MB"
        )
        fetched = run_python_measured(FETCH_MANY, server.url, env=env)
        print(
            f"Job.fetch_many: {fetched.seconds:.2f}s, peak RSS {fetched.peak_rss_mb:,.0f} MB "
            f"({fetched.stdout.split()[0]} jobs)"
        )
        client.close()

    fat_reject, dumps = times["fat_reject"][0], times["json_dumps_fat"][0]
    result: dict[str, Any] = {
        "lean_accept_us": round(times["lean_accept"][0], 2),
        "fat_reject_us": round(fat_reject, 2),
        "fat_dict_reject_us": round(times["fat_dict_reject"][0], 2),
        "json_dumps_fat_us": round(dumps, 1),
        "fat_reject_share_of_json_dumps": round(fat_reject / dumps, 6),
        "backlog_jobs": jobs,
        "backlog_mb": round(backlog_mb, 1),
        "inspect_10k_s": round(report["seconds"], 3),
        "inspect_process_s": round(inspect.seconds, 3),
        "inspect_peak_rss_mb": round(inspect.peak_rss_mb, 1),
        "fetch_many_peak_rss_mb": round(fetched.peak_rss_mb, 1),
        "scale": scale,
    }
    result["targets_met"] = {
        "fat_reject_us<=100": fat_reject <= 100,
        "fat_reject_us<=1%_json_dumps": fat_reject <= 0.01 * dumps,
        "fat_dict_reject_us<=100": times["fat_dict_reject"][0] <= 100,
        "inspect_peak_rss_mb<=64": inspect.peak_rss_mb <= 64,
        "backlog_over_500mb": backlog_mb > 500 or args.quick,
    }
    emit_json(result)
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
