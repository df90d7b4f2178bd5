"""Drill ``fat-jobs``: one large email fanned out into 300 batch jobs (INCIDENTS.md #2).

An author with 30,000 subscribers sends an email; the sender batches the recipients by
100 into 300 jobs. In the incident each job carried the whole `Email` object (sixty
columns, four renderings of the body, over 5 MB), so the fan-out put 1.5 GB into Redis,
and the scheduler, which deserialises every scheduled job to find the next one due,
OOM-looped in its 512 MB for six hours.

Here the email is scaled down to `EMAIL_BYTES` (256 KiB, a twentieth) and so is the
scheduler's memory (`SCHEDULER_MEMORY`, 25.6 MB), so the drill runs in seconds and
keeps the incident's proportions. Each job is serialised as RQ does by default (pickle)
into an in-process store; the scheduler's peak memory is measured with `tracemalloc`
while it reads every job back, as RQ's ``Job.fetch_many`` does. A scheduler whose peak
is over its memory gets no job through (it is killed and restarts into the same state).

Unguarded, every job carries the email. Guarded, the enqueue goes through a
`PayloadGuard` with the default `PayloadPolicy`: the first job is refused at enqueue
(``args[0] is sendguard.drills.fat_jobs.Email: pass its id``, nothing is written), and
the sender enqueues the lean version, the email's id and the recipient ids.
"""

from __future__ import annotations

import contextlib
import gc
import pickle
import random
import tracemalloc
from dataclasses import dataclass, field

from sendguard.drills._base import Drill, Goal, Metric, Value
from sendguard.jobs import PayloadGuard, PayloadRejected

__all__ = ["DRILL", "Email", "FanOutRun", "replay", "send_batch", "simulate_fan_out"]

FULL_SUBSCRIBERS = 30_000
BATCH = 100
"""Recipients per job: 300 jobs at scale 1.0."""
EMAIL_BYTES = 256 * 1024
"""The rendered email's size: the incident's 5 MB, scaled by 1/20."""
SCHEDULER_MEMORY = 512e6 / 20
"""The scheduler's memory, scaled like the email: 25.6 MB (the incident's dyno: 512 MB)."""
MB = 1e6
SEED = 2


@dataclass(slots=True)
class Email:
    """The ORM object of the incident: sixty columns, four of them the rendered body."""

    id: int
    subject: str
    body_html: str
    body_text: str
    body_markdown: str
    body_amp: str
    columns: dict[str, str] = field(default_factory=dict)


def send_batch(email_id: int, recipient_ids: list[int]) -> int:
    """The lean job: it loads the email by id (the worker side, never called here)."""
    return len(recipient_ids)


def _email(rng: random.Random) -> Email:
    quarter = EMAIL_BYTES // 4
    words = [
        rng.choice(("news", "letter", "hello", "world", "reader", "sendguard"))
        for _ in range(quarter // 6)
    ]
    text = " ".join(words)[:quarter]
    return Email(
        id=4242,
        subject="Our biggest issue yet",
        body_html=f"<p>{text}</p>",
        body_text=text,
        body_markdown=f"*{text}*",
        body_amp=f"<amp>{text}</amp>",
        columns={f"column_{n}": f"value {n}" for n in range(56)},
    )


@dataclass(frozen=True, slots=True)
class FanOutRun:
    """What one run wrote and what the scheduler then needed."""

    jobs_written: int
    fat_jobs_written: int
    bytes_written: int
    largest_job: int
    scheduler_peak: int
    """Bytes the scheduler had allocated at its peak while reading every job back."""
    rejection: PayloadRejected | None
    """The error the guarded enqueue raised for the fat version (None unguarded)."""

    @property
    def scheduler_survives(self) -> bool:
        """Whether the scheduler's peak fits its (scaled) memory."""
        return self.scheduler_peak <= SCHEDULER_MEMORY

    @property
    def jobs_scheduled(self) -> int:
        """Jobs the scheduler got through: all of them, or none when it runs out of memory."""
        return self.jobs_written if self.scheduler_survives else 0


class _Redis:
    """Where jobs go: their serialised bytes, as RQ writes them (pickle, RQ's default)."""

    def __init__(self) -> None:
        self.jobs: list[bytes] = []

    def enqueue(self, function: str, args: tuple[object, ...]) -> None:
        self.jobs.append(pickle.dumps((function, None, args, {}), protocol=pickle.HIGHEST_PROTOCOL))


def _scheduler_peak(jobs: list[bytes]) -> int:
    """Peak bytes allocated while reading every job back (fetch, then deserialise)."""
    gc.collect()
    tracemalloc.start()
    try:
        fetched = [bytes(bytearray(raw)) for raw in jobs]  # the replies of Job.fetch_many
        loaded = [pickle.loads(raw) for raw in fetched]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del fetched, loaded
    return peak


def simulate_fan_out(*, guarded: bool, scale: float = 1.0) -> FanOutRun:
    """Fan one email out to ``30,000 * scale`` recipients and let the scheduler read it."""
    rng = random.Random(SEED)
    email = _email(rng)
    recipients = list(range(1, round(FULL_SUBSCRIBERS * scale) + 1))
    batches = [recipients[i : i + BATCH] for i in range(0, len(recipients), BATCH)]
    name = f"{__name__}.send_batch"
    redis = _Redis()
    guard = PayloadGuard(hooks=[]) if guarded else None
    rejection: PayloadRejected | None = None
    fat = 0
    try:
        with guard.batch() if guard is not None else contextlib.nullcontext():
            for batch in batches:
                if guard is not None:
                    guard.check(name, (email, batch), queue="five_minutes")
                redis.enqueue(name, (email, batch))
                fat += 1
    except PayloadRejected as refused:
        rejection = refused
    if rejection is not None:  # the sender's fix: ids, not objects
        assert guard is not None
        with guard.batch():
            for batch in batches:
                guard.check(name, (email.id, batch), queue="five_minutes")
                redis.enqueue(name, (email.id, batch))
    sizes = [len(job) for job in redis.jobs]
    return FanOutRun(
        jobs_written=len(redis.jobs),
        fat_jobs_written=fat,
        bytes_written=sum(sizes),
        largest_job=max(sizes, default=0),
        scheduler_peak=_scheduler_peak(redis.jobs),
        rejection=rejection,
    )


FAT = Metric("fat_jobs", "jobs written with the email inside", "jobs")
WRITTEN = Metric("written_mb", "job data written to Redis", "MB", digits=1)
LARGEST = Metric("largest_kb", "largest job", "KB", digits=1)
PEAK = Metric("scheduler_peak_mb", "scheduler peak memory reading the jobs", "MB", digits=1)
SCHEDULED = Metric("scheduled", "jobs the scheduler got through", "jobs")


def replay(*, guarded: bool, scale: float) -> dict[str, Value]:
    """One run's figures, keyed by metric."""
    run = simulate_fan_out(guarded=guarded, scale=scale)
    return {
        FAT.key: run.fat_jobs_written,
        WRITTEN.key: run.bytes_written / MB,
        LARGEST.key: run.largest_job / 1000,
        PEAK.key: round(run.scheduler_peak / MB, 1),  # tracemalloc varies by a few KB
        SCHEDULED.key: run.jobs_scheduled,
    }


def _jobs(scale: float) -> float:
    return -(-round(FULL_SUBSCRIBERS * scale) // BATCH)


DRILL = Drill(
    name="fat-jobs",
    incident="one 5 MB email fanned out into 300 jobs OOM-loops the scheduler (#2; sizes / 20)",
    metrics=(FAT, WRITTEN, LARGEST, PEAK, SCHEDULED),
    goals=(
        Goal.at_most(FAT, 0, "no job carries the email ({bound} written)"),
        Goal.at_most(LARGEST, 64 * 1.024, "every job within the {bound} KB budget"),
        Goal.at_most(WRITTEN, lambda scale: 0.02 * _jobs(scale), "at most {bound} MB written"),
        Goal.at_most(PEAK, SCHEDULER_MEMORY / MB, "scheduler peak within its {bound} MB"),
        Goal.at_least(SCHEDULED, _jobs, "every batch scheduled ({bound} jobs)"),
    ),
    replay=replay,
    headline=PEAK.key,
    min_scale=0.1,
)
"""The ``fat-jobs`` drill."""
