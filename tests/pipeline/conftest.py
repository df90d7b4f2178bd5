"""Fixtures of the pipeline tests: a fresh Postgres database per test, SMTP sinks."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from sendguard import Guard
from sendguard.pipeline.config import ProviderConfig
from sendguard.pipeline.sinks import SinkServer


@pytest.fixture
def pipeline_dsn(postgres_dsn: str) -> Iterator[str]:
    """A DSN for an empty database of this test's own, dropped afterwards."""
    name = f"pipeline_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres_dsn)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sinks() -> Iterator[tuple[SinkServer, SinkServer]]:
    """Two SMTP sinks on loopback, "primary" and "backup", without faults."""
    with SinkServer("primary") as primary, SinkServer("backup") as backup:
        yield primary, backup


def providers(*servers: SinkServer, timeout: float = 2.0) -> tuple[ProviderConfig, ...]:
    """Provider configurations pointing at `servers`, in failover order."""
    return tuple(ProviderConfig(s.name, s.host, s.port, timeout=timeout) for s in servers)


def stored_counts(*servers: SinkServer) -> Counter[str]:
    """How many times each key was stored, over all `servers`."""
    total: Counter[str] = Counter()
    for server in servers:
        total.update(server.counts_by_key())
    return total


class AsgiClient:
    """Requests to an ASGI app over one event loop of its own; `close` also closes the
    guard's connections made on that loop (as a server's lifespan shutdown would)."""

    def __init__(self, app: Any, guard: Guard | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.guard = guard
        transport = httpx.ASGITransport(app=app)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://api")

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.loop.run_until_complete(
            self.http.request(method, path, json=body, headers=headers)
        )

    def close(self) -> None:
        self.loop.run_until_complete(self.http.aclose())
        if self.guard is not None:
            self.loop.run_until_complete(self.guard.aclose())
        self.loop.close()
