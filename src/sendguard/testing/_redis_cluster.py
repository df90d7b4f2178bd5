"""A private three-node Redis Cluster for tests (see `sendguard.testing.servers`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from sendguard.testing._redis_server import RedisServer
from sendguard.testing._server_base import (
    _START_TIMEOUT,
    ServerStartError,
    StrPath,
    _tail,
    free_port,
)

if TYPE_CHECKING:
    import redis

__all__ = ["RedisClusterServer"]

_SLOTS = 16384
_POLL = 0.02


def _command(client: redis.Redis, *args: str | int) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


class RedisClusterServer:
    """Three (or more) private `redis-server` nodes on 127.0.0.1 joined into one cluster.

    Every node is a primary without replicas and owns an equal share of the 16384 slots;
    each keeps its cluster config file (``nodes.conf``) in its own temp dir. `start()`
    returns once every node reports ``cluster_state:ok`` and knows all the others.
    Needs redis-server 7.0 or later: each node is given its cluster bus port explicitly
    (``--cluster-port``), since free client ports above 55535 have no room for the
    default bus port (client port + 10000).

    Args:
        nodes: how many primaries (at least 3, like a real cluster).
        binary: path to `redis-server`; default: looked up in `search_path`.
        search_path: directories to search instead of PATH.
        args: extra `redis-server` arguments for every node.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        binary: StrPath | None = None,
        search_path: Sequence[StrPath] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        if nodes < 3:
            raise ValueError(f"a Redis Cluster needs at least 3 primaries, got nodes={nodes!r}")
        ports: set[int] = set()
        while len(ports) < 2 * nodes:  # a client port and a cluster bus port per node
            ports.add(free_port())
        picked = sorted(ports)
        self.bus_ports = picked[1::2]
        self.nodes = [
            RedisServer(binary, search_path=search_path, port=port, args=self._node_args(bus, args))
            for port, bus in zip(picked[0::2], self.bus_ports, strict=True)
        ]

    @staticmethod
    def _node_args(bus_port: int, extra: Sequence[str]) -> list[str]:
        return [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(bus_port), "--cluster-node-timeout", "5000", *extra,
        ]  # fmt: skip

    @property
    def port(self) -> int:
        """The port of the first node (the one `url` names)."""
        return self.nodes[0].port

    @property
    def ports(self) -> list[int]:
        """The ports of all nodes."""
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:PORT/0` of the first node (sendguard's cluster URL)."""
        return f"redis+cluster://127.0.0.1:{self.port}/0"

    @property
    def is_running(self) -> bool:
        """Whether every node process is alive."""
        return all(node.is_running for node in self.nodes)

    def start(self) -> None:
        """Start the nodes, assign the slots, join them, and wait for ``cluster_state:ok``."""
        if self.is_running:
            return
        try:
            for node in self.nodes:
                node.start()
            self._create()
        except BaseException:
            self.stop()
            raise

    def _create(self) -> None:
        import redis

        clients = [
            redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) for port in self.ports
        ]
        try:
            if all(self._info(c).get("cluster_state") == "ok" for c in clients):
                return  # already formed (a restart that kept nodes.conf)
            share = _SLOTS // len(clients)
            for i, client in enumerate(clients):
                first = i * share
                last = _SLOTS - 1 if i == len(clients) - 1 else first + share - 1
                _command(client, "CLUSTER", "ADDSLOTS", *range(first, last + 1))
                _command(client, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            for port, bus in zip(self.ports[1:], self.bus_ports[1:], strict=True):
                _command(clients[0], "CLUSTER", "MEET", "127.0.0.1", port, bus)
            self._wait_ok(clients)
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _info(client: redis.Redis) -> dict[str, str]:
        raw = _command(client, "CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _wait_ok(self, clients: Sequence[redis.Redis]) -> None:
        want = str(len(clients))
        deadline = time.monotonic() + _START_TIMEOUT
        infos: list[dict[str, str]] = []
        while time.monotonic() < deadline:
            infos = [self._info(c) for c in clients]
            if all(
                i.get("cluster_state") == "ok" and i.get("cluster_known_nodes") == want
                for i in infos
            ):
                return
            time.sleep(_POLL)  # polling a condition with a deadline, not a fixed wait
        logs = "\n".join(f"--- {n.log_path} ---\n{_tail(n.log_path, 10)}" for n in self.nodes)
        raise ServerStartError(
            f"Redis Cluster on ports {self.ports} not ok within {_START_TIMEOUT:.0f}s;"
            f" CLUSTER INFO: {infos}\n{logs}"
        )

    def stop(self, *, cleanup: bool = True) -> None:
        """Stop every node; with `cleanup` (default) also delete their temp dirs."""
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop(cleanup=cleanup)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
