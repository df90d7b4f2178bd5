"""`PipelineConfig`: what the reference pipeline runs on, validated when it is built.

    config = PipelineConfig(providers=(ProviderConfig("primary", "127.0.0.1", 2525),))
    config = PipelineConfig.from_env()      # SENDGUARD_PROVIDERS, SENDGUARD_REDIS_URL, ...
    os.environ.update(config.to_env())      # what an RQ worker process reads back

No `redis_url`: in-memory guard stores and an in-process queue with worker threads. No
`postgres_dsn`: records in SQLite at `sqlite_path`. Every field has an environment
variable, ``SENDGUARD_`` and its name in capitals; providers are written
``name=host:port`` separated by commas (``SENDGUARD_PROVIDERS=primary=127.0.0.1:2525``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sendguard import ConfigError
from sendguard.ratelimit import parse_rates

__all__ = ["ENV_PREFIX", "PipelineConfig", "ProviderConfig"]

ENV_PREFIX = "SENDGUARD_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def _number(owner: str, field_name: str, value: object, low: float, high: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise ConfigError(f"{owner}.{field_name} must be in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _whole(owner: str, field_name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"{owner}.{field_name} must be a whole number in [{low}, {high}], got {value!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One SMTP provider: a name (its breaker is ``provider:<name>``), host and port."""

    name: str
    host: str
    port: int
    timeout: float = 5.0
    """Seconds an SMTP connection or reply may take before the attempt gives up."""
    sessions: int = 2
    """SMTP sessions open at once to this provider (each process)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"ProviderConfig.name must be letters, digits, '_', '.' or '-', got {self.name!r}"
            )
        if not isinstance(self.host, str) or not self.host or any(c in self.host for c in " ,="):
            raise ConfigError(f"ProviderConfig.host must be a host name, got {self.host!r}")
        _whole("ProviderConfig", "port", self.port, 1, 65535)
        _number("ProviderConfig", "timeout", self.timeout, 0.05, 300)
        _whole("ProviderConfig", "sessions", self.sessions, 1, 100)

    def to_text(self) -> str:
        """``name=host:port/timeout/sessions``."""
        return f"{self.name}={self.host}:{self.port}/{self.timeout!r}/{self.sessions}"

    @classmethod
    def from_text(cls, text: str) -> ProviderConfig:
        """Parse ``name=host:port[/timeout[/sessions]]``."""
        pattern = r"\s*([^=\s]+)=([^:\s]+):(\d+)(?:/([0-9.]+)(?:/(\d+))?)?\s*"
        match = re.fullmatch(pattern, text)
        if match is None:
            raise ConfigError(
                f"a provider is written name=host:port[/timeout[/sessions]], got {text!r}"
            )
        name, host, port, timeout, sessions = match.groups()
        return cls(
            name,
            host,
            int(port),
            float(timeout) if timeout else 5.0,
            int(sessions) if sessions else 2,
        )


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """Everything the pipeline needs; a bad value raises `ConfigError` naming it."""

    providers: tuple[ProviderConfig, ...] = ()
    """SMTP providers in failover order (at least one)."""
    redis_url: str | None = None
    """Redis for the queue (RQ), the ledger, breakers, pacing, limits and heartbeats."""
    postgres_dsn: str | None = None
    """Postgres for the records (``postgresql://...``); None: SQLite at `sqlite_path`."""
    sqlite_path: str = ":memory:"
    """The SQLite file when there is no Postgres (``:memory:``: this process only)."""
    sender: str = "newsletter@sendguard.test"
    batch_size: int = 100
    """Recipients per job: each job carries an email id and at most this many ids."""
    worker_threads: int = 4
    """In-process workers when there is no Redis (0: the API only)."""
    queue_name: str = "sendguard-pipeline"
    pace: str = "50/second"
    """Outbound pace per recipient domain (a rate string; every rate spaces sends)."""
    pace_burst: int = 20
    pace_max_wait: float = 5.0
    """The longest a message waits for its domain's slot before it is deferred."""
    retry_attempts: int = 3
    """SMTP attempts per provider for a transient error (jittered backoff, budgeted)."""
    retry_base: float = 0.05
    retry_cap: float = 1.0
    breaker_failures: int = 5
    """Failures in a row that open a provider's breaker (then it fails over)."""
    breaker_open_for: float = 10.0
    max_rounds: int = 3
    """How often deferred messages (known not sent) are enqueued again by the worker."""
    defer_delay: float = 0.5
    """Seconds before the first re-enqueue of deferred messages (doubling per round)."""
    analytics_every: float = 5.0
    """Seconds between two runs of the analytics cron job."""
    baseline_limits: str = "1200/minute;100/second"
    create_limits: str = "30/minute"
    """Limits on creating emails and lists, per client."""
    analytics_limits: str = "120/minute"
    analytics_concurrency: int = 4
    """Analytics requests running at once (the bulkhead)."""
    analytics_slow: float = 0.5
    """Seconds from which an analytics request counts as slow for its breaker."""

    def __post_init__(self) -> None:
        own = "PipelineConfig"
        if not isinstance(self.providers, tuple) or not self.providers:
            raise ConfigError(
                f"{own}.providers must be a non-empty tuple of ProviderConfig, "
                f"got {self.providers!r}"
            )
        names: set[str] = set()
        for provider in self.providers:
            if not isinstance(provider, ProviderConfig):
                raise ConfigError(f"{own}.providers holds {provider!r}, not a ProviderConfig")
            if provider.name in names:
                raise ConfigError(f"{own}.providers names {provider.name!r} twice")
            names.add(provider.name)
        if self.redis_url is not None and (
            not isinstance(self.redis_url, str) or not self.redis_url.startswith(_REDIS_SCHEMES)
        ):
            raise ConfigError(
                f"{own}.redis_url must be redis://, rediss:// or unix://, got {self.redis_url!r}"
            )
        if self.postgres_dsn is not None and (
            not isinstance(self.postgres_dsn, str)
            or not self.postgres_dsn.startswith(_POSTGRES_SCHEMES)
        ):
            raise ConfigError(
                f"{own}.postgres_dsn must be a postgresql:// URL, got {self.postgres_dsn!r}"
            )
        if not isinstance(self.sqlite_path, str) or not self.sqlite_path:
            raise ConfigError(
                f"{own}.sqlite_path must be a path or ':memory:', got {self.sqlite_path!r}"
            )
        if (
            not isinstance(self.sender, str)
            or self.sender.count("@") != 1
            or any(c.isspace() or c in "<>," for c in self.sender)
        ):
            raise ConfigError(
                f"{own}.sender must be an address like a@b.example, got {self.sender!r}"
            )
        if not isinstance(self.queue_name, str) or not _NAME.match(self.queue_name):
            raise ConfigError(f"{own}.queue_name must be a plain name, got {self.queue_name!r}")
        _whole(own, "batch_size", self.batch_size, 1, 1000)
        _whole(own, "worker_threads", self.worker_threads, 0, 64)
        _whole(own, "pace_burst", self.pace_burst, 1, 10_000)
        _whole(own, "max_rounds", self.max_rounds, 0, 20)
        _whole(own, "retry_attempts", self.retry_attempts, 1, 20)
        _whole(own, "breaker_failures", self.breaker_failures, 1, 1000)
        _number(own, "retry_base", self.retry_base, 0.001, 60)
        _number(own, "retry_cap", self.retry_cap, self.retry_base, 600)
        _number(own, "breaker_open_for", self.breaker_open_for, 0.1, 3600)
        _whole(own, "analytics_concurrency", self.analytics_concurrency, 1, 1000)
        _number(own, "pace_max_wait", self.pace_max_wait, 0, 3600)
        _number(own, "defer_delay", self.defer_delay, 0, 3600)
        _number(own, "analytics_every", self.analytics_every, 0.05, 86_400)
        _number(own, "analytics_slow", self.analytics_slow, 0.001, 60)
        for name in ("pace", "baseline_limits", "create_limits", "analytics_limits"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ConfigError(f"{own}.{name} must be a rate string, got {value!r}")
            try:
                parse_rates(value)
            except ConfigError as error:
                raise ConfigError(f"{own}.{name}: {error}") from None

    @property
    def embedded(self) -> bool:
        """True without Redis: memory stores, an in-process queue and worker threads."""
        return self.redis_url is None

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with `changes`, validated again."""
        return dataclasses.replace(self, **changes)

    # --- the environment ---------------------------------------------------------------

    def to_env(self) -> dict[str, str]:
        """The ``SENDGUARD_*`` variables `from_env` reads back into this configuration."""
        env: dict[str, str] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if item.name == "providers":
                text = ",".join(provider.to_text() for provider in value)
            elif isinstance(value, float):
                text = repr(value)
            else:
                text = str(value)
            env[ENV_PREFIX + item.name.upper()] = text
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineConfig:
        """Build from ``SENDGUARD_*`` variables (`os.environ` by default).

        Unset variables keep their defaults; ``SENDGUARD_PROVIDERS`` is required.
        """
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        known = {ENV_PREFIX + item.name.upper(): item for item in dataclasses.fields(cls)}
        for variable, item in known.items():
            raw = source.get(variable)
            if raw is None:
                continue
            values[item.name] = _parse(variable, item, raw)
        if "providers" not in values:
            raise ConfigError(
                f"{ENV_PREFIX}PROVIDERS is not set: list providers as name=host:port,..."
            )
        return cls(**values)


def _parse(variable: str, item: dataclasses.Field[Any], raw: str) -> Any:
    """One environment variable as the field's type; a bad value names the variable."""
    text = raw.strip()
    kind = str(item.type)
    try:
        if item.name == "providers":
            return tuple(ProviderConfig.from_text(part) for part in text.split(",") if part)
        if "None" in kind:
            return text or None
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ConfigError as error:
        raise ConfigError(f"{variable}: {error}") from None
    except ValueError:
        raise ConfigError(f"{variable} must be a {kind}, got {raw!r}") from None
    return text
