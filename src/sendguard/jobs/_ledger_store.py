"""The ledger storage contract, and the in-process store that implements it.

Every operation is one atomic transition of one entry (the Redis store: one Lua script,
one round trip; Postgres: one statement when a key is new, else one short transaction).
Durations cross the contract as seconds; each store reads time on its own clock (Redis
and Postgres: the server's), so processes never compare clocks. Entries of one ledger
`name` are kept apart from other ledgers sharing the store.
"""

from __future__ import annotations

import threading
from typing import Protocol

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard.jobs import _ledger_core as core
from sendguard.jobs._ledger_core import Decision, EntryState, LedgerEntry, Record

__all__ = ["LedgerStore", "MemoryLedgerStore"]

_TERMINAL = (EntryState.COMPLETED, EntryState.FAILED)


class LedgerStore(Protocol):
    """Where a `Ledger` keeps its entries. Store failures raise `StoreUnavailable`."""

    label: str

    def begin(
        self,
        ledger: str,
        key: str,
        fingerprint: str,
        token: str,
        lease: float,
        retry_abandoned: bool,
    ) -> tuple[Decision, LedgerEntry]:
        """Decide a call (see `sendguard.jobs._ledger_core.begin`)."""
        ...

    def finish(
        self,
        ledger: str,
        key: str,
        token: str,
        state: EntryState,
        result: str | None,
        digest: str,
        detail: str,
        retention: float,
    ) -> tuple[bool, LedgerEntry | None]:
        """Record attempt `token`'s outcome; a COMPLETED or FAILED entry is kept for
        `retention` seconds, an UNKNOWN one until it is resolved."""
        ...

    def renew(
        self, ledger: str, key: str, token: str, lease: float
    ) -> tuple[bool, LedgerEntry | None]:
        """Extend attempt `token`'s lease to `lease` seconds from now."""
        ...

    def get(self, ledger: str, key: str) -> LedgerEntry | None:
        """The entry for `key`, if any."""
        ...

    def resolve(
        self, ledger: str, key: str, state: EntryState, detail: str, retention: float
    ) -> tuple[bool, LedgerEntry | None]:
        """Settle an UNKNOWN (or abandoned) entry as COMPLETED or FAILED."""
        ...

    def unknowns(self, ledger: str, limit: int = 100) -> list[LedgerEntry]:
        """UNKNOWN entries, oldest first, after turning abandoned leases into UNKNOWN."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryLedgerStore:
    """Ledger entries in this process (tests, drills, a single worker)."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, label: str = "memory") -> None:
        self.label = label
        self.clock = clock
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], tuple[Record, float | None]] = {}
        """(ledger, key) -> (record, expiry in clock seconds or None)."""

    def _now(self) -> int:
        return round(self.clock.wall() * 1000)

    def _get(self, ledger: str, key: str) -> Record | None:
        found = self._records.get((ledger, key))
        if found is None:
            return None
        record, expires = found
        if expires is not None and self.clock.wall() >= expires:
            del self._records[(ledger, key)]
            return None
        return record

    def _keep(self, ledger: str, record: Record, retention: float | None) -> None:
        expires = None if retention is None else self.clock.wall() + retention
        self._records[(ledger, record.key)] = (record, expires)

    def begin(
        self,
        ledger: str,
        key: str,
        fingerprint: str,
        token: str,
        lease: float,
        retry_abandoned: bool,
    ) -> tuple[Decision, LedgerEntry]:
        now = self._now()
        with self._lock:
            decision, record = core.begin(
                self._get(ledger, key),
                key,
                fingerprint,
                token,
                now,
                round(lease * 1000),
                retry_abandoned,
            )
            if decision in (Decision.STARTED, Decision.UNKNOWN):
                self._keep(ledger, record, None)
            return decision, record.entry(now)

    def finish(
        self,
        ledger: str,
        key: str,
        token: str,
        state: EntryState,
        result: str | None,
        digest: str,
        detail: str,
        retention: float,
    ) -> tuple[bool, LedgerEntry | None]:
        now = self._now()
        with self._lock:
            record = self._get(ledger, key)
            done = core.finish(record, token, state, result, digest, detail, now)
            if done and record is not None:
                self._keep(ledger, record, retention if state in _TERMINAL else None)
            return done, None if record is None else record.entry(now)

    def renew(
        self, ledger: str, key: str, token: str, lease: float
    ) -> tuple[bool, LedgerEntry | None]:
        now = self._now()
        with self._lock:
            record = self._get(ledger, key)
            done = core.renew(record, token, round(lease * 1000), now)
            return done, None if record is None else record.entry(now)

    def get(self, ledger: str, key: str) -> LedgerEntry | None:
        now = self._now()
        with self._lock:
            record = self._get(ledger, key)
            return None if record is None else record.entry(now)

    def resolve(
        self, ledger: str, key: str, state: EntryState, detail: str, retention: float
    ) -> tuple[bool, LedgerEntry | None]:
        now = self._now()
        with self._lock:
            record = self._get(ledger, key)
            done = core.resolve(record, state, detail, now)
            if done and record is not None:
                self._keep(ledger, record, retention)
            return done, None if record is None else record.entry(now)

    def unknowns(self, ledger: str, limit: int = 100) -> list[LedgerEntry]:
        now = self._now()
        with self._lock:
            found = []
            for (name, key), (record, _) in list(self._records.items()):
                if name != ledger or self._get(name, key) is None:
                    continue
                core.expire(record, now)
                if record.state is EntryState.UNKNOWN:
                    found.append(record)
            found.sort(key=lambda r: (r.updated, r.key))
            return [record.entry(now) for record in found[:limit]]

    def close(self) -> None:
        """Nothing to release."""
