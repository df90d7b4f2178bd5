"""Run the reference sending pipeline: two SMTP sinks, the guarded API on uvicorn, workers.

    python examples/pipeline.py                     # embedded: memory stores, SQLite, threads
    python examples/pipeline.py --redis redis://localhost:6379/0 \\
        --postgres postgresql://app@localhost/app    # RQ workers, shared guards, Postgres

With --redis an `rq worker` process is started with the pipeline's environment
(`PipelineConfig.to_env`), the way a deployment runs it. Ctrl-C finishes the queued jobs
and stops.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sendguard.pipeline import Pipeline, PipelineConfig, ProviderConfig, SinkServer

TRY = """Try:
  curl -s -X POST {url}/v1/emails -d '{{"subject": "Hello", "body": "Our first issue"}}'
  curl -s -X POST {url}/v1/lists \\
      -d '{{"name": "readers", "addresses": ["a@example.com", "b@example.org"]}}'
  curl -s -X POST {url}/v1/emails/1/send -d '{{"list_id": 1}}'
  curl -s {url}/v1/emails/1/analytics    # 202 until the analytics cron job has run
  curl -s {url}/readyz"""


def worker_command(config: PipelineConfig) -> list[str]:
    """The `rq worker` command line for the pipeline's queue."""
    assert config.redis_url is not None
    return [
        str(Path(sys.executable).parent / "rq"), "worker", config.queue_name, "--with-scheduler",
        "--url", config.redis_url, "--job-class", "sendguard.pipeline.jobqueue.PipelineJob",
        "--queue-class", "sendguard.jobs.rq.LeanQueue",
        "--serializer", "sendguard.jobs.rq.JSONSerializer",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="redis://... for the queue, ledger, guards, heartbeats")
    parser.add_argument("--postgres", help="postgresql://... for the records")
    parser.add_argument("--port", type=int, default=8000, help="API port (0: any free one)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    scratch = tempfile.TemporaryDirectory(prefix="sendguard-pipeline-")
    # An RQ worker is another process: it needs the records in a file (or Postgres).
    sqlite = str(Path(scratch.name) / "records.db") if args.redis else ":memory:"
    with scratch, SinkServer("primary") as primary, SinkServer("backup") as backup:
        config = PipelineConfig(
            providers=tuple(ProviderConfig(s.name, s.host, s.port) for s in (primary, backup)),
            redis_url=args.redis,
            postgres_dsn=args.postgres,
            sqlite_path=sqlite,
        )
        with Pipeline(config, cron=True) as pipeline:
            url = pipeline.serve(port=args.port)
            worker = None
            if config.redis_url:
                env = {**os.environ, **config.to_env()}
                worker = subprocess.Popen(worker_command(config), env=env)
            print(f"API on {url} ({pipeline!r}); SMTP sinks on {primary.port} and {backup.port}")
            print(TRY.format(url=url), flush=True)
            try:
                stop.wait()
                print("stopping: finishing the jobs already queued (Ctrl-C again to quit)")
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                pipeline.drain(timeout=30)
            finally:
                if worker is not None:
                    worker.terminate()
                    worker.wait(10)
        for sink in (primary, backup):
            print(f"{sink.name} stored {len(sink.received())} messages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
