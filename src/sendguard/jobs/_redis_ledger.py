"""The ledger in Redis: each transition is one Lua script, one round trip, atomic.

Keys of a ledger named ``sends`` (one Cluster hash tag per ledger, so a script may touch
the entry and the ledger's indexes together)::

    sendguard:{ledger:sends}:e:<key>    hash: the entry (fields below)
    sendguard:{ledger:sends}:leases     sorted set: key -> lease end (ms), in-progress entries
    sendguard:{ledger:sends}:unknown    sorted set: key -> when it became unknown (ms)

Entry fields: ``k`` key, ``st`` state (0 in progress, 1 completed, 2 failed, 3 unknown),
``fp`` payload fingerprint, ``tok`` attempt token, ``lease`` lease end (ms), ``n``
attempts, ``res`` result JSON, ``hr`` 1 when a result is recorded, ``dig`` result digest,
``why`` detail, ``upd``/``crt`` updated and created (ms), ``exp`` when a settled entry
lapses (ms; 0: kept). Completed and failed entries expire after the ledger's retention
(``exp``, and a PEXPIRE that removes the key); in-progress and unknown ones are kept
until they are settled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis

from sendguard._core.errors import StoreUnavailable
from sendguard._core.keys import key_part, make_key
from sendguard._core.redis_script import load_script, slot_client
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, connect_redis
from sendguard.jobs._ledger_core import Decision, EntryState, LedgerEntry

if TYPE_CHECKING:
    from sendguard._core.store import RedisClient

__all__ = ["RedisLedgerStore"]

_SCRIPT = load_script("sendguard.jobs", "ledger.lua")
_STATES = (EntryState.IN_PROGRESS, EntryState.COMPLETED, EntryState.FAILED, EntryState.UNKNOWN)
_DECISIONS = (
    Decision.STARTED,
    Decision.REPLAYED,
    Decision.IN_PROGRESS,
    Decision.UNKNOWN,
    Decision.MISMATCH,
)
_ERRORS = (redis.RedisError, OSError)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _entry(key: str, raw: Sequence[Any]) -> LedgerEntry | None:
    _, st, fp, tok, left, n, res, hr, dig, why, upd, crt = raw
    if int(st) < 0:
        return None
    return LedgerEntry(
        key=key,
        state=_STATES[int(st)],
        fingerprint=_text(fp),
        attempts=int(n),
        token=_text(tok),
        lease_remaining=int(left) / 1000,
        result=_text(res) if _text(hr) == "1" else None,
        result_digest=_text(dig),
        detail=_text(why),
        updated_at=int(upd) / 1000,
        created_at=int(crt) / 1000,
    )


class RedisLedgerStore:
    """Ledger entries in Redis, shared by every process (see the module doc for the keys).

    Args:
        url: a ``redis://`` URL (clients get `timeout`-second sockets, no retries), or
            pass `client`.
        time_ms: a source of milliseconds instead of the server's ``TIME`` (tests).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: RedisClient | None = None,
        timeout: float = DEFAULT_STORE_TIMEOUT,
        time_ms: Callable[[], int] | None = None,
    ) -> None:
        if url is None and client is None:
            raise ValueError("RedisLedgerStore needs a url or a client")
        self.label = "redis"
        self._url = url
        self._timeout = timeout
        self._client = client
        self._time_ms = time_ms

    @property
    def client(self) -> RedisClient:
        """The client (made from the URL on first use)."""
        if self._client is None:
            assert self._url is not None
            self._client = connect_redis(self._url, timeout=self._timeout)
        return self._client

    @staticmethod
    def keys(ledger: str, key: str) -> list[str]:
        """The entry hash, the leases index and the unknown index of `key` in `ledger`."""
        return [
            make_key("ledger", ledger, f"e:{key_part(key)}"),
            make_key("ledger", ledger, "leases"),
            make_key("ledger", ledger, "unknown"),
        ]

    def _run(self, ledger: str, key: str, op: str, *rest: str | int | float) -> list[Any]:
        now = "" if self._time_ms is None else self._time_ms()
        try:
            raw: list[Any] = _SCRIPT.run(self.client, self.keys(ledger, key), [op, now, key, *rest])
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis ledger store: {exc}") from exc
        return raw

    def _applied(
        self, ledger: str, key: str, op: str, *rest: str | int | float
    ) -> tuple[bool, LedgerEntry | None]:
        raw = self._run(ledger, key, op, *rest)
        return int(raw[0]) == 1, _entry(key, raw)

    def begin(
        self,
        ledger: str,
        key: str,
        fingerprint: str,
        token: str,
        lease: float,
        retry_abandoned: bool,
    ) -> tuple[Decision, LedgerEntry]:
        raw = self._run(ledger, key, "begin", fingerprint, token, _ms(lease), int(retry_abandoned))
        entry = _entry(key, raw)
        assert entry is not None
        return _DECISIONS[int(raw[0])], entry

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
        return self._applied(
            ledger,
            key,
            "finish",
            token,
            _STATES.index(state),
            result or "",
            "1" if result is not None else "0",
            digest,
            detail,
            _ms(retention),
        )

    def renew(
        self, ledger: str, key: str, token: str, lease: float
    ) -> tuple[bool, LedgerEntry | None]:
        return self._applied(ledger, key, "renew", token, _ms(lease))

    def get(self, ledger: str, key: str) -> LedgerEntry | None:
        return _entry(key, self._run(ledger, key, "get"))

    def resolve(
        self, ledger: str, key: str, state: EntryState, detail: str, retention: float
    ) -> tuple[bool, LedgerEntry | None]:
        if state not in (EntryState.COMPLETED, EntryState.FAILED):
            raise ValueError(f"an entry is resolved as completed or failed, not {state.value}")
        return self._applied(ledger, key, "resolve", _STATES.index(state), detail, _ms(retention))

    def unknowns(self, ledger: str, limit: int = 100) -> list[LedgerEntry]:
        """Turn abandoned leases into UNKNOWN (pipelined), then read the unknown entries."""
        leases, unknown = (
            make_key("ledger", ledger, "leases"),
            make_key("ledger", ledger, "unknown"),
        )
        now = self._time_ms() if self._time_ms is not None else None
        try:
            node = slot_client(self.client, leases)  # all of one ledger's keys: one slot
            node.script_load(_SCRIPT.source)  # pipelined EVALSHAs need it cached
            if now is None:
                seconds, micros = node.time()
                now = int(seconds) * 1000 + int(micros) // 1000
            expired = node.zrangebyscore(leases, "-inf", now, start=0, num=max(limit, 1000))
            pipe = node.pipeline(transaction=False)
            for member in expired:
                name = _text(member)
                _SCRIPT.run(pipe, self.keys(ledger, name), ["expire", now, name])
            pipe.execute()
            members = [_text(m) for m in node.zrange(unknown, 0, limit - 1)]
            pipe = node.pipeline(transaction=False)
            for name in members:
                _SCRIPT.run(pipe, self.keys(ledger, name), ["get", now, name])
            replies = pipe.execute()
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis ledger store: {exc}") from exc
        found = [_entry(name, raw) for name, raw in zip(members, replies, strict=True)]
        return [entry for entry in found if entry is not None]

    def close(self) -> None:
        """Close the client made from the URL."""
        if self._client is not None and self._url is not None:
            self._client.close()
