"""The Redis stores of `sendguard.jobs`: the idempotency ledger and cron heartbeats.

This module imports redis-py (``sendguard[redis]``); ``Ledger("redis://...")`` and
``Heartbeats("redis://...")`` load it on demand, or import the stores from here to pass
your own client. The key layouts are documented in each store's class docstring and in
docs/jobs.md.
"""

from sendguard.jobs._redis_heartbeats import INDEX_KEY as HEARTBEAT_INDEX_KEY
from sendguard.jobs._redis_heartbeats import RedisHeartbeatStore
from sendguard.jobs._redis_ledger import RedisLedgerStore

__all__ = ["HEARTBEAT_INDEX_KEY", "RedisHeartbeatStore", "RedisLedgerStore"]
