"""Throwaway real servers for tests: a private `redis-server` and a private Postgres cluster.

Each server lives in its own temporary directory, listens only on 127.0.0.1 on a free
port, is tuned for speed over durability, and is removed again on `stop()` (with an
`atexit` safety net for servers a test forgot to stop)::

    with RedisServer() as redis_srv, PostgresServer(max_connections=20) as pg:
        use(redis_srv.url, pg.dsn)

`RedisClusterServer` runs three such `redis-server` nodes joined into a Redis Cluster;
its `url` is a ``redis+cluster://`` URL that sendguard's stores accept.

Binaries are looked up on PATH (and, for Postgres, under `/usr/lib/postgresql/*/bin`,
newest first); a missing one raises `ServerBinaryMissing` naming the package to install.
Postgres refuses to run as root, so under root its commands run as the `postgres` system
user (else `nobody`): `subprocess` drops uid, gid and supplementary groups in the child.
"""

from sendguard.testing._postgres_server import PostgresServer
from sendguard.testing._redis_cluster import RedisClusterServer
from sendguard.testing._redis_server import RedisServer
from sendguard.testing._server_base import ServerBinaryMissing, ServerStartError, free_port

__all__ = [
    "PostgresServer",
    "RedisClusterServer",
    "RedisServer",
    "ServerBinaryMissing",
    "ServerStartError",
    "free_port",
]
