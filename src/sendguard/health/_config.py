"""Probes from a TOML file, for ``sendguard health check --config guard.toml``.

    [health]
    interval = "5s"

    [[health.probe]]
    type = "postgres"
    dsn = "${DATABASE_URL}"          # ${NAME} reads the environment (unset: an error)

    [[health.probe]]
    type = "tls"
    hosts = ["links.example.com", "t1.example.com:8443"]
    warn_days = 14

Types and their keys (every probe also takes ``name``, ``critical`` and ``timeout``):
``postgres`` (dsn, query, latency_warn, latency_fail, statement_timeout), ``saturation``
(dsn of the admin role, role, warn, fail), ``redis`` (url, memory_warn, memory_fail),
``rq`` and ``celery`` (url, queue, depth_warn, depth_fail, age_warn, age_fail),
``heartbeat`` (url, job, every, grace), ``tls`` (hosts, warn_days, fail_days, cafile),
``http`` (url, expect, latency_warn, latency_fail). Durations are seconds or ``90s``,
``5m``. An unknown type or key is an error that names it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sendguard._core.durations import parse_duration
from sendguard._core.errors import ConfigError
from sendguard.health._admin import AdminConnection
from sendguard.health._heartbeat import HeartbeatProbe, RedisHeartbeats
from sendguard.health._http import HttpProbe
from sendguard.health._postgres import PostgresProbe
from sendguard.health._probe import Probe
from sendguard.health._queues import CeleryBacklogProbe, RqBacklogProbe
from sendguard.health._redis import RedisProbe
from sendguard.health._registry import HealthRegistry
from sendguard.health._result import Thresholds
from sendguard.health._saturation import SaturationProbe
from sendguard.health._tls import tls_probes

__all__ = ["load_config", "probes_from_config"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COMMON = ("name", "critical", "timeout")


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):

        def lookup(found: re.Match[str]) -> str:
            name = found.group(1)
            if name not in os.environ:
                raise ConfigError(f"{where} uses ${{{name}}}, which is not set")
            return os.environ[name]

        return _VAR.sub(lookup, value)
    if isinstance(value, list):
        return [_expand(item, where) for item in value]
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a duration, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ConfigError(f"{where} must be a duration (seconds or 90s, 5m), got {value!r}")


class _Table:
    """One ``[[health.probe]]`` table: typed reads, and a check that every key was used."""

    def __init__(self, raw: Mapping[str, Any], where: str) -> None:
        self.where = where
        self.raw = {key: _expand(value, f"{where}.{key}") for key, value in raw.items()}
        self.used = {"type"}

    def get(self, key: str, default: Any = None, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.raw:
            if required:
                raise ConfigError(f"{self.where} needs {key!r}")
            return default
        return self.raw[key]

    def seconds(self, key: str, default: float | None = None) -> float | None:
        value = self.get(key)
        return default if value is None else _seconds(value, f"{self.where}.{key}")

    def thresholds(self, prefix: str, warn: float | None, fail: float | None, *,
                   below: bool = False, duration: bool = False) -> Thresholds:  # fmt: skip
        read = self.seconds if duration else (lambda key, d: self.get(key, d))
        lo, hi = read(f"{prefix}_warn", warn), read(f"{prefix}_fail", fail)
        return Thresholds.below(lo, hi) if below else Thresholds.above(lo, hi)

    def common(self) -> dict[str, Any]:
        options: dict[str, Any] = {k: self.get(k) for k in ("name", "critical") if k in self.raw}
        if "timeout" in self.raw:
            options["timeout"] = self.seconds("timeout")
        return options

    def finish(self) -> None:
        unknown = sorted(set(self.raw) - self.used - set(_COMMON))
        if unknown:
            raise ConfigError(f"{self.where} has unknown keys: {', '.join(unknown)}")


def _postgres(t: _Table) -> list[Probe]:
    options = t.common()
    if "query" in t.raw:
        options["query"] = t.get("query")
    if "statement_timeout" in t.raw:
        options["statement_timeout"] = t.seconds("statement_timeout")
    latency = t.thresholds("latency", 1.0, None, duration=True)
    return [PostgresProbe(t.get("dsn", required=True), latency=latency, **options)]


def _saturation(t: _Table) -> list[Probe]:
    admin = AdminConnection(t.get("dsn", required=True))
    utilization = Thresholds.above(t.get("warn", 0.80), t.get("fail", 0.95))
    return [
        SaturationProbe(
            admin, utilization=utilization, role=t.get("role"), owns_admin=True, **t.common()
        )
    ]


def _redis(t: _Table) -> list[Probe]:
    memory = t.thresholds("memory", 0.80, 0.95)
    return [RedisProbe(t.get("url", required=True), memory=memory, **t.common())]


Backlog = type[RqBacklogProbe] | type[CeleryBacklogProbe]


def _backlog(kind: Backlog) -> Callable[[_Table], list[Probe]]:
    def build(t: _Table) -> list[Probe]:
        default_queue = "default" if kind is RqBacklogProbe else "celery"
        depth = t.thresholds("depth", 1000, None)
        age = t.thresholds("age", 300.0, 1800.0, duration=True)
        url, queue = t.get("url", required=True), t.get("queue", default_queue)
        return [kind(url, queue, depth=depth, age=age, **t.common())]

    return build


def _heartbeat(t: _Table) -> list[Probe]:
    every = t.seconds("every")
    if every is None:
        raise ConfigError(f"{t.where} needs 'every' (how often the job runs)")
    store = RedisHeartbeats(t.get("url", required=True))
    job = t.get("job", required=True)
    return [HeartbeatProbe(store, job, every=every, grace=t.seconds("grace"), **t.common())]


def _tls(t: _Table) -> list[Probe]:
    hosts = t.get("hosts", required=True)
    if not isinstance(hosts, list) or not hosts:
        raise ConfigError(f"{t.where}.hosts must be a list of host or host:port")
    options = {k: v for k, v in t.common().items() if k != "name"}
    for key in ("warn_days", "fail_days", "cafile"):
        if key in t.raw:
            options[key] = t.get(key)
    return list(tls_probes(hosts, **options))


def _http(t: _Table) -> list[Probe]:
    options = t.common()
    if "expect" in t.raw:
        options["expect"] = tuple(t.get("expect"))
    latency = t.thresholds("latency", 1.0, None, duration=True)
    return [HttpProbe(t.get("url", required=True), latency=latency, **options)]


_BUILDERS: dict[str, Callable[[_Table], list[Probe]]] = {
    "postgres": _postgres,
    "saturation": _saturation,
    "redis": _redis,
    "rq": _backlog(RqBacklogProbe),
    "celery": _backlog(CeleryBacklogProbe),
    "heartbeat": _heartbeat,
    "tls": _tls,
    "http": _http,
}


def probes_from_config(section: Mapping[str, Any]) -> list[Probe]:
    """The probes described by a ``[health]`` table (``probe`` is a list of tables)."""
    tables = section.get("probe", [])
    if not isinstance(tables, list):
        raise ConfigError("health.probe must be an array of tables ([[health.probe]])")
    probes: list[Probe] = []
    for index, raw in enumerate(tables):
        where = f"health.probe[{index}]"
        kind = raw.get("type") if isinstance(raw, Mapping) else None
        if kind not in _BUILDERS:
            raise ConfigError(f"{where}.type must be one of {', '.join(_BUILDERS)}, got {kind!r}")
        table = _Table(raw, where)
        probes += _BUILDERS[kind](table)
        table.finish()
    return probes


def load_config(source: str | Path | Mapping[str, Any]) -> HealthRegistry:
    """A registry (not started) with the probes of a TOML file or an already-parsed mapping."""
    if isinstance(source, Mapping):
        document: Mapping[str, Any] = source
    else:
        try:
            document = tomllib.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read health config {str(source)!r}: {error}") from None
    section = document.get("health")
    if not isinstance(section, Mapping):
        raise ConfigError("the config has no [health] table")
    unknown = sorted(set(section) - {"interval", "description", "probe"})
    if unknown:
        raise ConfigError(f"[health] has unknown keys: {', '.join(unknown)}")
    interval = _seconds(section.get("interval", 5.0), "health.interval")
    return HealthRegistry(
        probes_from_config(section), interval=interval,
        description=str(section.get("description", "")),
    )  # fmt: skip
