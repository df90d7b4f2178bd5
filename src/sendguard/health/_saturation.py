"""Connection saturation, read over the reserved admin connection.

Postgres gives ordinary roles ``max_connections - superuser_reserved_connections -
reserved_connections`` slots (``reserved_connections`` exists from Postgres 16). The
probe counts client backends (not replication or background workers; its own session
included, since it holds a slot too) against those slots, and reports the transactions
left idle (how many, the oldest) and the longest running query: the usual reasons the
slots run out. One query per check, over a connection opened before they ran out.

It is not critical by default: when Postgres is 95 % full, taking every instance out of
the load balancer would turn a warning into an outage. It makes readiness ``warn`` (and
its metrics and alerts fire); the fresh-connection probe is the one that fails readiness
when this instance really cannot get a connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from sendguard._core.errors import ConfigError
from sendguard.health._admin import AdminConnection
from sendguard.health._probe import BaseProbe
from sendguard.health._result import Detail, ProbeResult, Status, Thresholds

__all__ = ["Saturation", "SaturationProbe"]

_IDLE_IN_TX = "('idle in transaction', 'idle in transaction (aborted)')"
SATURATION_SQL = f"""
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true), '0')::int,
       count(*) FILTER (WHERE backend_type = 'client backend'),
       count(*) FILTER (WHERE state IN {_IDLE_IN_TX}),
       coalesce(extract(epoch FROM max(now() - state_change)
                FILTER (WHERE state IN {_IDLE_IN_TX})), 0)::float8,
       coalesce(extract(epoch FROM max(now() - query_start)
                FILTER (WHERE state = 'active' AND backend_type = 'client backend'
                        AND pid <> pg_backend_pid())), 0)::float8,
       count(*) FILTER (WHERE usename = %s AND backend_type = 'client backend'),
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = %s)
FROM pg_stat_activity
"""


@dataclass(frozen=True, slots=True)
class Saturation:
    """One reading of the server's connection slots."""

    max_connections: int
    superuser_reserved: int
    reserved: int
    client_backends: int
    idle_in_transaction: int = 0
    oldest_idle_in_transaction: float = 0.0
    longest_query: float = 0.0
    role_connections: int = 0
    role_limit: int | None = None
    """The application role's CONNECTION LIMIT (None or -1: no limit)."""

    @property
    def ordinary_slots(self) -> int:
        """Slots any role may take: max_connections minus both reserves."""
        return max(1, self.max_connections - self.superuser_reserved - self.reserved)

    @property
    def utilization(self) -> float:
        """Client backends over ordinary slots (1.0 is full), or over the role's own
        CONNECTION LIMIT when that is the tighter."""
        server = self.client_backends / self.ordinary_slots
        if self.role_limit is not None and self.role_limit > 0:
            return max(server, self.role_connections / self.role_limit)
        return server


_UTILIZATION = Thresholds.above(warn=0.80, fail=0.95)
_IDLE_IN_TRANSACTION = Thresholds.above(warn=60.0)
_LONGEST_QUERY = Thresholds.above(warn=300.0)


@dataclass(frozen=True, slots=True)
class SaturationPolicy:
    """Thresholds on utilisation (fractions), idle transactions and query age (seconds)."""

    utilization: Thresholds = _UTILIZATION
    oldest_idle_in_transaction: Thresholds = _IDLE_IN_TRANSACTION
    longest_query: Thresholds = _LONGEST_QUERY

    def __post_init__(self) -> None:
        for name in ("utilization", "oldest_idle_in_transaction", "longest_query"):
            if not isinstance(getattr(self, name), Thresholds):
                raise ConfigError(f"SaturationProbe.{name} must be Thresholds")

    def judge(self, reading: Saturation) -> ProbeResult:
        """The result for `reading` (pure)."""
        use = reading.utilization
        statuses = {
            "utilization": self.utilization.judge(use),
            "idle": self.oldest_idle_in_transaction.judge(reading.oldest_idle_in_transaction),
            "query": self.longest_query.judge(reading.longest_query),
        }
        problems = []
        if statuses["utilization"] is not Status.PASS:
            problems.append(
                f"{reading.client_backends} of {reading.ordinary_slots} ordinary connection "
                f"slots in use ({use:.0%})"
            )
            if reading.role_limit is not None and reading.role_limit > 0:
                problems[-1] += f"; role at {reading.role_connections} of {reading.role_limit}"
        if statuses["idle"] is not Status.PASS:
            problems.append(
                f"{reading.idle_in_transaction} sessions idle in transaction, the oldest for "
                f"{reading.oldest_idle_in_transaction:.0f}s"
            )
        if statuses["query"] is not Status.PASS:
            problems.append(f"a query has run for {reading.longest_query:.0f}s")
        details: dict[str, Detail] = {
            "client_backends": reading.client_backends,
            "ordinary_slots": reading.ordinary_slots,
            "max_connections": reading.max_connections,
            "superuser_reserved_connections": reading.superuser_reserved,
            "reserved_connections": reading.reserved,
            "idle_in_transaction": reading.idle_in_transaction,
            "oldest_idle_in_transaction_s": round(reading.oldest_idle_in_transaction, 1),
            "longest_query_s": round(reading.longest_query, 1),
        }
        if reading.role_limit is not None and reading.role_limit > 0:
            details.update(role_connections=reading.role_connections, role_limit=reading.role_limit)
        return ProbeResult(
            Status.worst(statuses.values()), "; ".join(problems),
            observed_value=round(use * 100, 1), observed_unit="%", measurement="utilization",
            details=details,
        )  # fmt: skip


class SaturationProbe(BaseProbe):
    """Connection slots in use, idle transactions and the longest query, over `admin`.

    Args:
        admin: the reserved admin connection.
        utilization: thresholds as fractions of the ordinary slots (default warn 0.80,
            fail 0.95).
        role: the application's role; when it has a CONNECTION LIMIT (the headroom
            fallback), its use of that limit counts too.
        oldest_idle_in_transaction: thresholds, in seconds, on the age of the oldest idle
            transaction (default warn at 60).
        longest_query: thresholds, in seconds, on the longest running query (default warn
            at 300).
        owns_admin: close `admin` when the probe is closed.
    """

    component_type = "datastore"

    def __init__(
        self,
        admin: AdminConnection,
        *,
        name: str = "postgres-saturation",
        critical: bool = False,
        timeout: float = 2.0,
        utilization: Thresholds = _UTILIZATION,
        oldest_idle_in_transaction: Thresholds = _IDLE_IN_TRANSACTION,
        longest_query: Thresholds = _LONGEST_QUERY,
        role: str | None = None,
        owns_admin: bool = False,
    ) -> None:
        super().__init__(name, critical=critical, timeout=timeout)
        self.admin = admin
        self.owns_admin = owns_admin
        self.policy = SaturationPolicy(utilization, oldest_idle_in_transaction, longest_query)
        self.role = role

    def close(self) -> None:
        """Close the admin connection if this probe owns it (`owns_admin`)."""
        if self.owns_admin:
            self.admin.close()

    def read(self) -> Saturation:
        """Take one reading over the admin connection (raises `AdminUnavailable`)."""
        rows = self.admin.execute(SATURATION_SQL, [self.role, self.role])
        (max_conn, su_reserved, reserved, backends, idle_tx, oldest_idle, longest,
         role_conns, role_limit) = rows[0]  # fmt: skip
        return Saturation(
            int(max_conn), int(su_reserved), int(reserved), int(backends), int(idle_tx),
            float(oldest_idle), float(longest), int(role_conns),
            None if role_limit is None else int(role_limit),
        )  # fmt: skip

    def check(self) -> ProbeResult:
        """Read and judge; notes when the admin role could not get into a full server."""
        result = self.policy.judge(self.read())
        notes = []
        if self.admin.reserved_access is None:
            notes.append(
                f"the admin role {self.admin.role!r} may not use reserved slots, so it "
                "would be locked out of a full server (see docs/health.md)"
            )
        if not self.admin.reads_all_stats:
            notes.append("the admin role lacks pg_read_all_stats: other roles' sessions "
                         "show no state, so idle transactions are undercounted")  # fmt: skip
        if not notes:
            return result
        message = "; ".join(filter(None, [result.message, *notes]))
        status = Status.worst((result.status, Status.WARN))
        return ProbeResult(
            status, message, result.observed_value, result.observed_unit,
            result.measurement, result.details,
        )  # fmt: skip
