"""`PayloadPolicy`: what a job may carry, as an immutable value validated when it is built."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sendguard._core.errors import ConfigError
from sendguard.jobs._measure import DEFAULT_EXTRA_TYPES

__all__ = ["KIB", "MIB", "PayloadPolicy"]

KIB = 1024
MIB = 1024 * KIB


def _whole(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(
            f"PayloadPolicy.{name} must be a whole number in [{low}, {high}], got {value!r}"
        )


@dataclass(frozen=True, slots=True)
class PayloadPolicy:
    """The type policy and the byte budgets for the jobs of a queue or a function.

    A job's payload is its positional and keyword arguments; its size is the length of
    ``json.dumps([args, kwargs])``. The defaults, and why:

    - `max_bytes` = 64 KiB per job. A job that carries ids (an email id and 100
      recipient ids) is about 4 KiB; 64 KiB leaves room for real parameters and stops
      anything document-sized. RQ's scheduler reads due jobs 1,000 at a time, so
      1,000 jobs at the limit are 64 MiB, an eighth of the 512 MB scheduler that
      OOM-looped in incident #2 on 5 MB jobs. Temporal errors at 2 MiB and warns at
      512 KiB, but Temporal streams a payload into a database row; an RQ or Celery
      payload sits in Redis memory and is read back whole, batch after batch, so the
      limit here is 32 times tighter.
    - `warn_bytes` = 16 KiB: a quarter of the budget, four times a healthy id-carrying
      job: a payload that has started to grow is logged (and counted) long before it
      is refused. None turns the warning off.
    - `batch_max_bytes` = 8 MiB for all the jobs of one batch (``enqueue_many``, or a
      `PayloadGuard.batch` block): the incident's fan-out of one email into 300 jobs
      is about 1.2 MiB with ids, and 1.5 GB with the email inside. A batch of 128 jobs
      at the per-job limit already fills it.
    - `max_depth` = 32 levels of nesting (JSON from real job code rarely passes 5; a
      circular reference hits it at once).
    - `extra_types`: besides JSON-native values (str, int, float, bool, None, lists,
      tuples, dicts with str keys), UUID, datetime, date, Decimal and Enum, written as
      strings (an Enum as its value). Everything else, an ORM model, a dataclass,
      bytes, a set, is refused with the path to it and what to pass instead: Sidekiq's
      strict arguments, with an allow-list. Set ``extra_types=()`` for strict JSON.
    - `enforce` = True. False makes the policy a dry run: violations are logged and
      counted (`PayloadRefused` with ``enforced=False``) but the job is enqueued, so
      you can find the fat jobs of an existing codebase before refusing them.
    """

    max_bytes: int = 64 * KIB
    warn_bytes: int | None = 16 * KIB
    batch_max_bytes: int = 8 * MIB
    max_depth: int = 32
    extra_types: tuple[type, ...] = DEFAULT_EXTRA_TYPES
    enforce: bool = True

    def __post_init__(self) -> None:
        _whole("max_bytes", self.max_bytes, 16, 1 << 40)
        if self.warn_bytes is not None:
            _whole("warn_bytes", self.warn_bytes, 1, 1 << 40)
            if self.warn_bytes >= self.max_bytes:
                raise ConfigError(
                    f"PayloadPolicy.warn_bytes={self.warn_bytes!r} must be below "
                    f"max_bytes={self.max_bytes!r} (or None for no warning)"
                )
        _whole("batch_max_bytes", self.batch_max_bytes, 16, 1 << 40)
        if self.batch_max_bytes < self.max_bytes:
            raise ConfigError(
                f"PayloadPolicy.batch_max_bytes={self.batch_max_bytes!r} is below "
                f"max_bytes={self.max_bytes!r}: no batch could hold one job at the limit"
            )
        _whole("max_depth", self.max_depth, 1, 512)
        if not isinstance(self.extra_types, tuple) or not all(
            isinstance(t, type) for t in self.extra_types
        ):
            raise ConfigError(
                f"PayloadPolicy.extra_types must be a tuple of types, got {self.extra_types!r}"
            )
        if not isinstance(self.enforce, bool):
            raise ConfigError(f"PayloadPolicy.enforce must be a bool, got {self.enforce!r}")

    def copy(self, **changes: Any) -> PayloadPolicy:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)
