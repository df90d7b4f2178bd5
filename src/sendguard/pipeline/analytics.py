"""Analytics, precomputed by a cron job with a heartbeat; the API only reads them.

    cron = AnalyticsCron(records, Heartbeats(redis_url), every=5.0)
    cron.refresh()          # one run: recompute the emails whose deliveries changed
    cron.start()            # embedded mode: a thread runs it every `every` seconds
    probe = cron.probe()    # readiness: the job stalled if no run succeeded lately

Each run is recorded by `sendguard.jobs.Heartbeats` under ``pipeline-analytics``: a job
that stops running (its thread died, the scheduler is down) shows as late, then
stalled, in ``sendguard cron status`` and in the API's readiness, instead of the
analytics silently going stale (incident #2). A run recomputes only the emails whose
deliveries changed since their figures were computed, a grouped count per email, so the
API's analytics endpoint never computes anything in band (incident #1).

Deployed with RQ, run it from cron (or any scheduler) in the pipeline's environment, with
``SENDGUARD_ANALYTICS_EVERY`` set to the schedule's period::

    * * * * * SENDGUARD_ANALYTICS_EVERY=60 python -m sendguard.pipeline.analytics
"""

from __future__ import annotations

import logging
import threading
import time

from sendguard.health import HeartbeatProbe
from sendguard.jobs import Heartbeats
from sendguard.pipeline.records import Records

__all__ = ["JOB_NAME", "AnalyticsCron", "main"]

JOB_NAME = "pipeline-analytics"
_log = logging.getLogger("sendguard.pipeline")


class AnalyticsCron:
    """Refreshes precomputed analytics; every run beats `heartbeats` (see the module doc).

    Args:
        records: where deliveries are counted and analytics stored.
        heartbeats: where runs are recorded (Redis to watch them from other processes).
        every: seconds between runs; a run is late after `every`, stalled after
            `every` + `grace`.
        grace: default: `every` (at least 5 s).
    """

    def __init__(
        self,
        records: Records,
        heartbeats: Heartbeats,
        *,
        every: float,
        grace: float | None = None,
    ) -> None:
        self.records = records
        self.heartbeats = heartbeats
        self.every = float(every)
        self.grace = max(5.0, self.every) if grace is None else float(grace)
        self.runs = 0
        """Runs that succeeded in this process."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        heartbeats.register(JOB_NAME, every=self.every, grace=self.grace)

    def refresh(self) -> int:
        """One run: recompute and store the stale analytics; how many emails it refreshed."""
        with (
            self._lock,
            self.heartbeats.heartbeat(JOB_NAME, every=self.every, grace=self.grace),
        ):
            computed = self.records.compute_analytics(self.records.stale_analytics())
            self.records.save_analytics(computed)
            self.runs += 1
        return len(computed)

    def probe(self, *, critical: bool = False) -> HeartbeatProbe:
        """A readiness probe: warns when no run succeeded for 1.5 `every` (a run missed,
        not a run a few milliseconds late), fails after `grace` more."""
        return HeartbeatProbe(
            self.heartbeats,
            JOB_NAME,
            every=self.every * 1.5,
            grace=self.grace,
            critical=critical,
            clock=self.heartbeats.clock,
        )

    def start(self) -> None:
        """Run `refresh` now and then every `every` seconds on a thread of its own."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="pipeline-analytics", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        due = time.monotonic()
        while True:
            try:
                self.refresh()
            except Exception:  # recorded by the heartbeat as a failed run; keep going
                _log.exception("analytics refresh failed")
            due = max(due + self.every, time.monotonic())  # a fixed period, no drift
            if self._stop.wait(due - time.monotonic()):
                return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the run in progress, if any)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)


def main() -> int:
    """One run from the ``SENDGUARD_*`` environment (for cron next to RQ workers)."""
    from sendguard.pipeline.config import PipelineConfig

    config = PipelineConfig.from_env()
    records = Records.open(config)
    heartbeats = Heartbeats(config.redis_url)
    try:
        refreshed = AnalyticsCron(records, heartbeats, every=config.analytics_every).refresh()
    finally:
        heartbeats.close()
        records.close()
    print(f"analytics refreshed for {refreshed} emails")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
