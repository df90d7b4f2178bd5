"""`Ledger`: run a side effect at most once per key, and know what happened when it broke.

    ledger = Ledger("redis://localhost:6379/0", name="sends")

    @ledger.idempotent(key="send:{message_id}")
    def send(message_id: str, to: str, subject: str) -> str: ...

    with ledger.idempotent(f"send:{message_id}", payload=message) as call:
        if not call.replayed:
            call.complete(smtp.send(message))
    provider_id = call.result

A call asks the store to `begin`; the decision either runs the body (and records how it
ended) or answers without running it: the recorded result of a completed call (a
replay), `AlreadyInProgress`, `OutcomeUnknown` or `PayloadMismatch`. How the body ended
decides the state: a return is COMPLETED; an exception in `unknown_on`, or one that is
not an `Exception` (a cancellation, a killed worker's SystemExit), is UNKNOWN, since
the effect may have happened; any other exception is FAILED and the next call runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, REDIS_SCHEMES, StoreGate
from sendguard._core.telemetry import Hook, Telemetry
from sendguard.jobs._errors import (
    AlreadyInProgress,
    OutcomeUnknown,
    PayloadMismatch,
    ResultNotRecorded,
)
from sendguard.jobs._events import LedgerDecision, LedgerTransition
from sendguard.jobs._ledger_core import Decision, EntryState, LedgerEntry
from sendguard.jobs._ledger_policy import LedgerPolicy
from sendguard.jobs._ledger_store import LedgerStore, MemoryLedgerStore
from sendguard.jobs._measure import encode_extra

if TYPE_CHECKING:
    from sendguard.jobs._idempotent import IdempotentCall

__all__ = ["Ledger", "fingerprint", "open_ledger_store"]

log = logging.getLogger("sendguard")
T = TypeVar("T")


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=encode_extra)


def fingerprint(payload: object) -> str:
    """A digest of `payload`'s canonical JSON (sorted keys): equal payloads, equal digests."""
    return hashlib.blake2b(_canonical(payload).encode(), digest_size=16).hexdigest()


def open_ledger_store(
    store: str | LedgerStore | None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    timeout: float = DEFAULT_STORE_TIMEOUT,
) -> LedgerStore:
    """A store from a URL (``memory://``, ``redis://...``, ``postgresql://...``) or object."""
    if store is None or store in ("memory", "memory://"):
        return MemoryLedgerStore(clock)
    if isinstance(store, str):
        if store.startswith(REDIS_SCHEMES):
            from sendguard.jobs.redis_store import RedisLedgerStore

            return RedisLedgerStore(store, timeout=timeout)
        if store.startswith(("postgresql://", "postgres://")):
            from sendguard.jobs.postgres_store import PostgresLedgerStore

            return PostgresLedgerStore(store, timeout=max(timeout, 1.0))
        raise ConfigError(
            f"unknown ledger store {store!r}: use memory://, redis://... or postgresql://..."
        )
    return store


class Ledger:
    """An idempotency ledger: one entry per key, shared by every process using the store.

    Args:
        store: where entries live: a URL or a `LedgerStore` (default: this process only).
        name: keeps this ledger's keys apart from other ledgers in the same store.
        policy: leases, retention, what counts as unknown, what to do when the store is
            down (`LedgerPolicy`; its defaults suit sending email).
    """

    def __init__(
        self,
        store: str | LedgerStore | None = None,
        *,
        name: str = "default",
        policy: LedgerPolicy | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Ledger.name must be a non-empty str, got {name!r}")
        if policy is not None and not isinstance(policy, LedgerPolicy):
            raise ConfigError(f"Ledger.policy must be a LedgerPolicy, got {policy!r}")
        self.name = name
        self.policy = policy or LedgerPolicy()
        self.clock = clock
        self.telemetry = Telemetry(hooks)
        self.store = open_ledger_store(store, clock)
        self._gate = StoreGate(self.store.label, "ledger", self.telemetry, clock=clock)
        self._inline = isinstance(self.store, MemoryLedgerStore)

    def __repr__(self) -> str:
        return f"Ledger(name={self.name!r}, store={self.store.label!r})"

    # --- store access -----------------------------------------------------------------

    def _via(self, op: Callable[[LedgerStore], T]) -> T:
        """Run a store operation; a failure backs the store off and raises StoreUnavailable."""
        if not self._gate.available():
            raise StoreUnavailable(f"ledger store {self.store.label!r} is backing off")
        try:
            result = op(self.store)
        except StoreUnavailable as exc:
            self._gate.failed(exc)
            raise
        self._gate.succeeded()
        return result

    async def _avia(self, op: Callable[[LedgerStore], T]) -> T:
        """`_via` without blocking the event loop (store I/O runs in a worker thread)."""
        if self._inline:
            return self._via(op)
        return await asyncio.to_thread(self._via, op)

    # --- the call protocol (used by `IdempotentCall`) ----------------------------------

    def decide(self, decision: Decision, entry: LedgerEntry, key: str) -> bool:
        """Act on `begin`'s answer: True to run the body, False for a replay, else raise."""
        self.telemetry.emit(LedgerDecision(ledger=self.name, decision=decision.value, key=key))
        if decision is Decision.STARTED:
            return True
        if decision is Decision.REPLAYED:
            return False
        where = f"ledger {self.name!r}: key {key!r}"
        if decision is Decision.IN_PROGRESS:
            raise AlreadyInProgress(
                f"{where} is being processed by another attempt (lease ends in "
                f"{entry.lease_remaining:.1f}s)",
                key=key,
                entry=entry,
                retry_after=entry.lease_remaining,
            )
        if decision is Decision.UNKNOWN:
            raise OutcomeUnknown(
                f"{where}: an earlier attempt's outcome is unknown ({entry.detail}); it is "
                "not retried automatically: resolve it once you know whether it happened",
                key=key,
                entry=entry,
            )
        raise PayloadMismatch(
            f"{where} was used before for a different payload (a key collision, or the "
            "same key reused for another call)",
            key=key,
            entry=entry,
        )

    def store_down(self, error: StoreUnavailable, key: str) -> bool:
        """The store failed at `begin`: True to run unguarded, else re-raise."""
        self.telemetry.emit(LedgerDecision(ledger=self.name, decision="store_down", key=key))
        if self.policy.on_store_down == "run":
            log.warning("sendguard: ledger %r unreachable, running %r unguarded", self.name, key)
            return True
        raise error

    def begin_op(self, key: str, fp: str, token: str) -> Callable[[LedgerStore], Any]:
        """The store operation that opens an attempt."""
        policy = self.policy
        return lambda s: s.begin(self.name, key, fp, token, policy.lease, policy.retry_abandoned)

    def outcome(self, error: BaseException | None) -> EntryState:
        """The state a body's ending leads to."""
        if error is None:
            return EntryState.COMPLETED
        if isinstance(error, self.policy.unknown_on) or not isinstance(error, Exception):
            return EntryState.UNKNOWN
        return EntryState.FAILED

    def encode_result(self, value: object) -> tuple[str | None, str]:
        """(JSON text or None when not JSON-native or too long, digest)."""
        try:
            text = _canonical(value)
        except (TypeError, ValueError):
            return None, ""
        digest = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        return (text if len(text) <= self.policy.max_result_bytes else None), digest

    def finish_op(
        self,
        key: str,
        token: str,
        state: EntryState,
        result: str | None,
        digest: str,
        detail: str,
    ) -> Callable[[LedgerStore], Any]:
        """The store operation that records an attempt's outcome."""
        return lambda s: s.finish(
            self.name, key, token, state, result, digest, detail[:500], self.policy.retention
        )

    def finished(self, key: str, state: EntryState, done: bool, detail: str) -> None:
        """Telemetry (and a log line when the attempt had lost its entry)."""
        if done:
            self.telemetry.emit(
                LedgerTransition(
                    ledger=self.name,
                    from_state=EntryState.IN_PROGRESS.value,
                    to_state=state.value,
                    key=key,
                    detail=detail,
                )
            )
        else:
            log.warning(
                "sendguard: ledger %r key %r: the attempt lost its entry before reporting %s",
                self.name,
                key,
                state.value,
            )

    def not_recorded(self, key: str, error: StoreUnavailable, state: EntryState) -> None:
        """The outcome could not be written: the lease will run out and it turns UNKNOWN."""
        log.error(
            "sendguard: ledger %r key %r: outcome %s not recorded (%s); the entry "
            "will turn unknown when its lease ends",
            self.name,
            key,
            state.value,
            error,
        )

    def replayed_result(self, key: str, entry: LedgerEntry) -> Any:
        """The recorded result of a completed call."""
        if entry.result is None:
            raise ResultNotRecorded(
                f"ledger {self.name!r}: key {key!r} completed before (result digest "
                f"{entry.result_digest or 'n/a'}), but its result was not JSON-native or too "
                "long, so it was not kept: return ids or small JSON values",
                key=key,
                entry=entry,
            )
        return json.loads(entry.result)

    def new_token(self) -> str:
        """A token for one attempt."""
        return uuid.uuid4().hex

    # --- public API -------------------------------------------------------------------

    def idempotent(
        self,
        key: str | Callable[..., str],
        *,
        payload: object = None,
    ) -> IdempotentCall:
        """A decorator (key: a ``str.format`` template over the arguments, or a function of
        them) or a context manager (key: the key itself). See `IdempotentCall`."""
        from sendguard.jobs._idempotent import IdempotentCall

        return IdempotentCall(self, key, payload)

    # Reads and operator actions go straight to the store (no back-off, no fallback): an
    # operator must see the store's answer, or that it did not answer.

    def get(self, key: str) -> LedgerEntry | None:
        """The entry for `key` (raises `StoreUnavailable` if the store cannot be reached)."""
        return self.store.get(self.name, key)

    def unknowns(self, limit: int = 100) -> list[LedgerEntry]:
        """Entries whose outcome is unknown (abandoned leases included), oldest first."""
        return self.store.unknowns(self.name, limit)

    def resolve(self, key: str, *, completed: bool, note: str) -> LedgerEntry:
        """Settle an UNKNOWN entry once someone knows: ``completed=True`` if the effect
        happened (replays become no-ops that return None: its result is not known), False
        if not (the next call runs again).

        Raises `ConfigError` if the entry is not unknown (or abandoned).
        """
        state = EntryState.COMPLETED if completed else EntryState.FAILED
        detail = f"resolved by operator: {note}"
        done, entry = self.store.resolve(self.name, key, state, detail, self.policy.retention)
        if not done or entry is None:
            found = "no entry" if entry is None else f"it is {entry.state.value}"
            raise ConfigError(f"ledger {self.name!r}: key {key!r} is not unknown ({found})")
        self.telemetry.emit(
            LedgerTransition(
                ledger=self.name,
                from_state=EntryState.UNKNOWN.value,
                to_state=state.value,
                key=key,
                detail=detail,
            )
        )
        return entry

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()
