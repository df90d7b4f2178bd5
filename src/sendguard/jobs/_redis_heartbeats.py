"""Heartbeats in Redis: one pipelined round trip per start or end of a run.

Keys, for a job named ``nightly-digest`` (readable by anything, documented for
``sendguard.health``)::

    sendguard:{heartbeat:nightly-digest}:runs   hash, fields below
    sendguard:{heartbeat:nightly-digest}:last   epoch seconds of the last success, as text
                                                (the key sendguard.health.RedisHeartbeats
                                                reads and ``sendguard health beat`` writes)
    sendguard:{heartbeat-index}:names           sorted set: job name -> first seen

Hash fields: ``name``; ``every`` and ``grace`` (seconds); ``first``, ``started``,
``succeeded``, ``failed`` (epoch seconds); ``duration`` (seconds, the last finished
run); ``error`` (the last failure, cleared by a success); ``failures`` (in a row);
``runs``. Every write refreshes a `retention` expiry (a week), so a job that was removed
from the crontab disappears from the listing after that long.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import redis

from sendguard._core.errors import StoreUnavailable
from sendguard._core.keys import make_key
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, connect_redis
from sendguard.jobs._heartbeat_core import HeartbeatRecord

if TYPE_CHECKING:
    from sendguard._core.store import RedisClient

__all__ = ["INDEX_KEY", "RedisHeartbeatStore"]

INDEX_KEY = "sendguard:{heartbeat-index}:names"
_ERRORS = (redis.RedisError, OSError)
_BATCH = 500


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(fields: Mapping[str, str], name: str) -> float | None:
    raw = fields.get(name)
    return float(raw) if raw else None


def _record(fields: Mapping[str, str]) -> HeartbeatRecord | None:
    if not fields.get("name"):
        return None
    return HeartbeatRecord(
        name=fields["name"],
        every=float(fields.get("every") or 0),
        grace=float(fields.get("grace") or 0),
        first_seen=float(fields.get("first") or 0),
        started_at=_float(fields, "started"),
        succeeded_at=_float(fields, "succeeded"),
        failed_at=_float(fields, "failed"),
        duration=_float(fields, "duration"),
        error=fields.get("error", ""),
        failures=int(fields.get("failures") or 0),
        runs=int(fields.get("runs") or 0),
    )


class RedisHeartbeatStore:
    """Heartbeats in Redis, shared by every process (see the module doc for the keys)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: RedisClient | None = None,
        timeout: float = DEFAULT_STORE_TIMEOUT,
        retention: float = 7 * 86400,
    ) -> None:
        if url is None and client is None:
            raise ValueError("RedisHeartbeatStore needs a url or a client")
        self.label = "redis"
        self.retention = int(retention)
        self._url = url
        self._timeout = timeout
        self._client = client

    @property
    def client(self) -> RedisClient:
        """The client (made from the URL on first use)."""
        if self._client is None:
            assert self._url is not None
            self._client = connect_redis(self._url, timeout=self._timeout)
        return self._client

    @staticmethod
    def key(name: str, field: str = "runs") -> str:
        """``sendguard:{heartbeat:<name>}:runs`` (or ``:last``)."""
        return make_key("heartbeat", name, field)

    def _pipeline(self, name: str, at: float, build: Any) -> None:
        key = self.key(name)
        try:
            pipe = self.client.pipeline(transaction=False)
            build(pipe, key)
            pipe.expire(key, self.retention)
            pipe.zadd(INDEX_KEY, {name: at}, nx=True)
            pipe.execute()
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis heartbeat store: {exc}") from exc

    def expect(self, name: str, every: float, grace: float, at: float) -> None:
        def build(pipe: Any, key: str) -> None:
            pipe.hset(key, mapping={"name": name, "every": repr(every), "grace": repr(grace)})
            pipe.hsetnx(key, "first", repr(at))

        self._pipeline(name, at, build)

    def started(self, name: str, every: float, grace: float, at: float) -> None:
        def build(pipe: Any, key: str) -> None:
            pipe.hset(
                key,
                mapping={
                    "name": name,
                    "every": repr(every),
                    "grace": repr(grace),
                    "started": repr(at),
                },
            )
            pipe.hsetnx(key, "first", repr(at))

        self._pipeline(name, at, build)

    def finished(self, name: str, ok: bool, at: float, duration: float, error: str) -> None:
        def build(pipe: Any, key: str) -> None:
            pipe.hincrby(key, "runs", 1)
            if ok:
                pipe.hset(
                    key,
                    mapping={
                        "succeeded": repr(at),
                        "duration": repr(duration),
                        "error": "",
                        "failures": 0,
                    },
                )
                pipe.set(self.key(name, "last"), repr(at), ex=self.retention)
            else:
                pipe.hset(
                    key, mapping={"failed": repr(at), "duration": repr(duration), "error": error}
                )
                pipe.hincrby(key, "failures", 1)

        self._pipeline(name, at, build)

    def read(self, name: str) -> HeartbeatRecord | None:
        try:
            raw = self.client.hgetall(self.key(name))
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis heartbeat store: {exc}") from exc
        return _record({_text(k): _text(v) for k, v in raw.items()})

    def records(self) -> list[HeartbeatRecord]:
        """Every indexed job (names whose hash expired are dropped from the index)."""
        try:
            names = sorted(_text(n) for n in self.client.zrange(INDEX_KEY, 0, -1))
            found: list[HeartbeatRecord] = []
            gone: list[str] = []
            for start in range(0, len(names), _BATCH):
                chunk = names[start : start + _BATCH]
                pipe = self.client.pipeline(transaction=False)
                for name in chunk:
                    pipe.hgetall(self.key(name))
                for name, raw in zip(chunk, pipe.execute(), strict=True):
                    record = _record({_text(k): _text(v) for k, v in raw.items()})
                    if record is None:
                        gone.append(name)
                    else:
                        found.append(record)
            if gone:
                self.client.zrem(INDEX_KEY, *gone)
        except _ERRORS as exc:
            raise StoreUnavailable(f"redis heartbeat store: {exc}") from exc
        return found

    def close(self) -> None:
        """Close the client made from the URL."""
        if self._client is not None and self._url is not None:
            self._client.close()
