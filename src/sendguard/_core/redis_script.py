"""Lua scripts run by SHA with a single fallback to EVAL (imported only when Redis is used).

On a Redis Cluster client, EVALSHA is routed by the slot of its first key (every guard's
keys share one hash tag, so one slot) and NOSCRIPT comes back from that node, so `run`
falls back the same way. redis-py's cluster pipeline refuses EVALSHA; `slot_client`
gives the plain client of the node that owns a slot, to pipeline on instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    import redis.cluster

__all__ = ["AsyncRedisClient", "RedisClient", "Script", "load_script", "slot_client"]


class RedisClient(Protocol):
    """The part of a redis-py client (or compatible) that sendguard uses for scripts."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: str | int | float) -> Any: ...

    def eval(self, script: str, numkeys: int, *keys_and_args: str | int | float) -> Any: ...


class AsyncRedisClient(Protocol):
    """The asyncio counterpart of `RedisClient`."""

    def evalsha(
        self, sha: str, numkeys: int, *keys_and_args: str | int | float
    ) -> Awaitable[Any]: ...

    def eval(
        self, script: str, numkeys: int, *keys_and_args: str | int | float
    ) -> Awaitable[Any]: ...


class Script:
    """A Lua script. `run` costs one round trip (two only the first time a server sees it)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(
        self, client: RedisClient, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Any:
        """Run the script on `client` (EVALSHA, then EVAL if the server does not know it)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *args)

    async def arun(
        self, client: AsyncRedisClient, keys: Sequence[str], args: Sequence[str | int | float]
    ) -> Any:
        """`run` on an asyncio client."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


def load_script(package: str, name: str) -> Script:
    """Load `name` (a `.lua` file shipped in `package`) as a `Script`."""
    return Script(resources.files(package).joinpath(name).read_text(encoding="utf-8"))


def slot_client(client: redis.Redis | redis.cluster.RedisCluster, key: str) -> redis.Redis:
    """The client to pipeline commands (scripts included) on `key`'s slot with.

    A single-node client is returned as is. For a cluster client it is the plain client
    of the primary that owns the slot: redis-py's cluster pipeline refuses EVALSHA, and
    that node's clock is the one the slot's scripts read. Every key used through it must
    carry `key`'s hash tag.
    """
    import redis.cluster

    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
        return client.get_redis_connection(node)
    return client
