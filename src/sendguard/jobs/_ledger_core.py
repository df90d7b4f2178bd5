"""The idempotency ledger's states and transitions, free of I/O.

One entry per key::

    (none) --begin--> IN_PROGRESS --finish(ok)-------> COMPLETED   replays return its result
                         |  ^      --finish(error)----> FAILED      begin again: a new attempt
                         |  |      --finish(unknown)--> UNKNOWN     an operator decides
                         |  +--begin (FAILED, or abandoned with retry_abandoned)
                         +--lease runs out, then begin or expire--> UNKNOWN
    UNKNOWN --resolve--> COMPLETED or FAILED

A lease that runs out means the attempt stopped without reporting (its worker died):
whether the effect happened is unknown, so by default the entry becomes UNKNOWN and is
never retried automatically. Only the attempt holding the entry's token may finish it,
including from UNKNOWN (a late report is the best news an operator can get), unless an
operator resolved it first.

`MemoryLedgerStore` and the Postgres store run these functions on a `Record`; the Redis
store runs the same transitions in ``ledger.lua`` (one behaviour suite covers all three).
Times are integer milliseconds on the store's clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "RESOLVED_RESULT",
    "Decision",
    "EntryState",
    "LedgerEntry",
    "Record",
    "begin",
    "expire",
    "finish",
    "renew",
    "resolve",
]

ABANDONED = "lease expired: the attempt stopped without reporting its outcome"
RESOLVED_RESULT = "null"
"""The result an operator-resolved completion records (replays return None)."""


class EntryState(enum.Enum):
    """Where one key of the ledger stands."""

    IN_PROGRESS = "in_progress"
    """An attempt holds the key until its lease runs out."""
    COMPLETED = "completed"
    """Done; the result (and its digest) are recorded; replays return it."""
    FAILED = "failed"
    """The attempt failed in a way known to have had no effect: the next call runs again."""
    UNKNOWN = "unknown"
    """The effect may or may not have happened: listed for an operator, never retried."""


class Decision(enum.Enum):
    """What `begin` decided for a call."""

    STARTED = "started"
    REPLAYED = "replayed"
    IN_PROGRESS = "in_progress"
    UNKNOWN = "unknown"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One key's record, as the store saw it when it answered."""

    key: str
    state: EntryState
    fingerprint: str
    """A digest of the payload the key was first used with."""
    attempts: int
    token: str
    """The current (or last) attempt's token."""
    lease_remaining: float
    """Seconds left on an in-progress attempt's lease (0 otherwise)."""
    result: str | None
    """The recorded result as JSON text (None: none recorded)."""
    result_digest: str
    detail: str
    """Why it is in its state: the error, the operator's note, an expired lease."""
    updated_at: float
    """Epoch seconds of the last change (the store's clock)."""
    created_at: float


@dataclass(slots=True)
class Record:
    """A mutable entry for stores that decide in Python (memory, Postgres)."""

    key: str
    state: EntryState
    fingerprint: str
    token: str
    lease_until: int = 0
    attempts: int = 1
    result: str | None = None
    digest: str = ""
    detail: str = ""
    updated: int = 0
    created: int = 0

    def entry(self, now: int) -> LedgerEntry:
        """The public view at `now`."""
        left = max(0, self.lease_until - now) if self.state is EntryState.IN_PROGRESS else 0
        return LedgerEntry(
            key=self.key,
            state=self.state,
            fingerprint=self.fingerprint,
            attempts=self.attempts,
            token=self.token,
            lease_remaining=left / 1000,
            result=self.result,
            result_digest=self.digest,
            detail=self.detail,
            updated_at=self.updated / 1000,
            created_at=self.created / 1000,
        )

    def _to_unknown(self, now: int, detail: str) -> None:
        self.state, self.detail, self.updated, self.lease_until = (
            EntryState.UNKNOWN,
            detail,
            now,
            0,
        )


def begin(
    record: Record | None,
    key: str,
    fingerprint: str,
    token: str,
    now: int,
    lease_ms: int,
    retry_abandoned: bool,
) -> tuple[Decision, Record]:
    """Decide a call on `key`; returns the decision and the record as it now stands."""
    if record is None:
        return Decision.STARTED, Record(
            key,
            EntryState.IN_PROGRESS,
            fingerprint,
            token,
            lease_until=now + lease_ms,
            updated=now,
            created=now,
        )
    if record.fingerprint != fingerprint:
        return Decision.MISMATCH, record
    if record.state is EntryState.COMPLETED:
        return Decision.REPLAYED, record
    if record.state is EntryState.UNKNOWN:
        return Decision.UNKNOWN, record
    if record.state is EntryState.IN_PROGRESS:
        if record.lease_until > now:
            return Decision.IN_PROGRESS, record
        if not retry_abandoned:
            record._to_unknown(now, ABANDONED)
            return Decision.UNKNOWN, record
    record.state, record.token, record.lease_until = EntryState.IN_PROGRESS, token, now + lease_ms
    record.attempts += 1
    record.detail, record.updated = "", now
    return Decision.STARTED, record


def finish(
    record: Record | None,
    token: str,
    state: EntryState,
    result: str | None,
    digest: str,
    detail: str,
    now: int,
) -> bool:
    """Record the outcome of attempt `token`; False when it no longer holds the entry."""
    if (
        record is None
        or record.token != token
        or record.state not in (EntryState.IN_PROGRESS, EntryState.UNKNOWN)
    ):
        return False
    record.state, record.result, record.digest, record.detail = state, result, digest, detail
    record.updated, record.lease_until = now, 0
    return True


def renew(record: Record | None, token: str, lease_ms: int, now: int) -> bool:
    """Extend attempt `token`'s lease to `now + lease_ms`; False if it lost the entry."""
    if record is None or record.token != token or record.state is not EntryState.IN_PROGRESS:
        return False
    record.lease_until = now + lease_ms
    return True


def expire(record: Record | None, now: int) -> bool:
    """Turn an in-progress entry whose lease ran out into UNKNOWN; True if it did."""
    if record is None or record.state is not EntryState.IN_PROGRESS or record.lease_until > now:
        return False
    record._to_unknown(now, ABANDONED)
    return True


def resolve(record: Record | None, state: EntryState, detail: str, now: int) -> bool:
    """An operator settles an UNKNOWN (or abandoned) entry as COMPLETED or FAILED."""
    if state not in (EntryState.COMPLETED, EntryState.FAILED):
        raise ValueError(f"an entry is resolved as completed or failed, not {state.value}")
    if record is None:
        return False
    abandoned = record.state is EntryState.IN_PROGRESS and record.lease_until <= now
    if record.state is not EntryState.UNKNOWN and not abandoned:
        return False
    record.state, record.detail, record.updated, record.lease_until = state, detail, now, 0
    if state is EntryState.COMPLETED:  # it happened; its result is not known: replays get None
        record.result, record.digest = RESOLVED_RESULT, ""
    return True
