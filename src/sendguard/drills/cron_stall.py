"""Drill ``cron-stall``: the scheduler dies, and cron and its monitoring with it (INCIDENTS.md #2).

In incident #2 the process that ran scheduled jobs was down for six hours; cron ran in
it, and almost all monitoring ran on cron, so nothing noticed. The operators' fix: be
paged when no cron has run in five minutes.

Three cron jobs run on a fake clock: ``check-backlog`` (the monitoring, every minute),
``send-scheduled`` (every five minutes) and ``nightly-digest`` (hourly here), each
taking a few seconds. At `FAILED_RUN` one run of ``send-scheduled`` fails; at
`DEATH` the scheduler dies, and the drill watches for six hours.

Unguarded, the only alerting is ``check-backlog``, a cron job: it dies with the
scheduler, and no alert ever comes. Guarded, each job records its runs through
`Heartbeats`, and a monitor that does not run on cron (a health probe, ``sendguard cron
status`` from an uptime checker) reads them every `CHECK_EVERY` seconds: the failed
run shows as ``failing`` at once, and each job shows as ``stalled`` within its ``every +
grace`` of its last finished run.
"""

from __future__ import annotations

from dataclasses import dataclass

from sendguard.drills._base import Drill, Goal, Metric, Value
from sendguard.jobs import CronState, HeartbeatCall, Heartbeats, MemoryHeartbeatStore
from sendguard.testing import FakeClock

__all__ = ["DRILL", "JOBS", "CronJob", "StallRun", "replay", "simulate_stall"]


@dataclass(frozen=True, slots=True)
class CronJob:
    """A job the scheduler runs every `every` seconds, for `takes` seconds."""

    name: str
    every: float
    grace: float
    takes: float


JOBS = (
    CronJob("check-backlog", every=60, grace=60, takes=2),
    CronJob("send-scheduled", every=300, grace=60, takes=20),
    CronJob("nightly-digest", every=3600, grace=600, takes=90),
)
FAILED_RUN = 1500.0
"""When ``send-scheduled`` has a failing run (seconds from the start)."""
DEATH = 2 * 3600.0 + 30
"""When the scheduler dies (seconds from the start)."""
WATCH = 6 * 3600.0
"""How long after its death the drill watches (the incident's six hours)."""
CHECK_EVERY = 10.0
"""How often the monitor outside cron reads the heartbeats."""


@dataclass(frozen=True, slots=True)
class StallRun:
    """When each problem was first reported, in seconds from the start (None: never)."""

    stalled_at: dict[str, float | None]
    failing_at: float | None
    false_alarms: int
    """Checks that reported a problem while every job was healthy."""
    last_finished: dict[str, float]

    @property
    def first_alert(self) -> float | None:
        """The first stall reported after the scheduler died."""
        times = [t for t in self.stalled_at.values() if t is not None]
        return min(times) if times else None


class _Scheduler:
    """Runs the jobs on the fake clock until it dies; records runs when guarded."""

    def __init__(self, clock: FakeClock, heartbeats: Heartbeats | None) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.heartbeats = heartbeats
        self.calls: dict[str, HeartbeatCall] = {}
        if heartbeats is not None:
            self.calls = {j.name: heartbeats.heartbeat(j.name, every=j.every, grace=j.grace)
                          for j in JOBS}  # fmt: skip
        self.running: dict[str, float] = {}
        self.last_finished: dict[str, float] = {}

    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    def tick(self, alive: bool) -> None:
        """Finish the runs whose time is up and start those due; a dead scheduler does
        neither (its runs in flight die with it)."""
        if not alive:
            return
        now = self.now()
        for job in JOBS:
            end = self.running.get(job.name)
            if end is not None and now >= end:
                del self.running[job.name]
                failed = job.name == "send-scheduled" and end - job.takes == FAILED_RUN
                self.last_finished[job.name] = now
                call = self.calls.get(job.name)
                if call is not None:
                    call.__exit__(
                        None, RuntimeError("SMTP relay refused") if failed else None, None
                    )
            if now % job.every == 0 and job.name not in self.running:
                self.running[job.name] = now + job.takes
                call = self.calls.get(job.name)
                if call is not None:
                    call.__enter__()


def simulate_stall(*, guarded: bool, scale: float = 1.0) -> StallRun:
    """Run the jobs, kill the scheduler at `DEATH`, watch for ``WATCH * scale`` seconds."""
    clock = FakeClock(start=0.0)
    heartbeats = Heartbeats(MemoryHeartbeatStore(), clock=clock, hooks=[]) if guarded else None
    scheduler = _Scheduler(clock, heartbeats)
    stalled: dict[str, float | None] = {job.name: None for job in JOBS}
    failing_at: float | None = None
    false_alarms = 0
    end = DEATH + WATCH * scale
    while scheduler.now() <= end:
        now = scheduler.now()
        scheduler.tick(alive=now < DEATH)
        if heartbeats is not None and now % CHECK_EVERY == 0:
            for status in heartbeats.statuses():
                if status.state is CronState.FAILING and failing_at is None:
                    failing_at = now
                if status.state is CronState.STALLED:
                    if now < DEATH:
                        false_alarms += 1
                    elif stalled[status.name] is None:
                        stalled[status.name] = now
        clock.advance(1.0)
    return StallRun(stalled, failing_at, false_alarms, dict(scheduler.last_finished))


def _job(name: str) -> CronJob:
    return next(job for job in JOBS if job.name == name)


ALERT = Metric("alert_s", "scheduler death to first alert", "s")
MONITOR = Metric("check_backlog_s", "check-backlog reported stalled after death", "s")
SENDER = Metric("send_scheduled_s", "send-scheduled reported stalled after death", "s")
DIGEST = Metric("nightly_digest_s", "nightly-digest reported stalled after death", "s")
LATE_BY = Metric("worst_over_s", "worst report beyond every + grace", "s")
FAILING = Metric("failing_s", "failed run to its report", "s")
FALSE = Metric("false_alarms", "false alarms while the scheduler ran", "checks")


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_stall(guarded=guarded, scale=scale)

    def after_death(name: str) -> float | None:
        found = run.stalled_at[name]
        return None if found is None else found - DEATH

    overs = [
        found - run.last_finished[job.name] - (job.every + job.grace)
        for job in JOBS
        if (found := run.stalled_at[job.name]) is not None
    ]
    failed_end = FAILED_RUN + _job("send-scheduled").takes
    return {
        ALERT.key: None if run.first_alert is None else run.first_alert - DEATH,
        MONITOR.key: after_death("check-backlog"),
        SENDER.key: after_death("send-scheduled"),
        DIGEST.key: after_death("nightly-digest"),
        LATE_BY.key: max(overs) if len(overs) == len(JOBS) else None,
        FAILING.key: None if run.failing_at is None else run.failing_at - failed_end,
        FALSE.key: run.false_alarms if guarded else 0,
    }


DRILL = Drill(
    name="cron-stall",
    incident="the scheduler dies, taking cron and the monitoring that ran on it (#2)",
    metrics=(ALERT, MONITOR, SENDER, DIGEST, LATE_BY, FAILING, FALSE),
    goals=(
        Goal.at_most(ALERT, 120 + CHECK_EVERY, "paged within {bound} s of the death"),
        Goal.at_most(LATE_BY, CHECK_EVERY, "each stall reported within every + grace (+{bound} s)"),
        Goal.at_most(FAILING, CHECK_EVERY, "a failed run reported within {bound} s"),
        Goal.at_most(FALSE, 0, "no false alarm while healthy ({bound})"),
    ),
    replay=replay,
    headline=ALERT.key,
    min_scale=0.25,
)
"""The ``cron-stall`` drill."""
