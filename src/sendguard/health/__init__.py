"""Health probes that see what users see, and a way in when the database is full.

    from sendguard import health

    admin = health.AdminConnection(ADMIN_DSN)          # a role allowed into reserved slots
    registry = health.HealthRegistry(
        [
            health.PostgresProbe(APP_DSN),                 # a FRESH connection, app's role
            health.SaturationProbe(admin),                 # slots in use, idle transactions
            health.RedisProbe(REDIS_URL),
            *health.tls_probes(["links.example.com", "t1.example.com"]),
        ],
        interval=5,
    )
    app = health.asgi_app(registry, app)                # /livez and /readyz, health+json

Readiness is answered from memory (a background refresher runs the probes concurrently,
each with its own timeout), so polling it adds no load to a struggling database; a
result older than its maximum age counts as failed. ``sendguard health check`` runs the
same probes once from the command line; ``sendguard db top`` and ``sendguard db kill``
work over the reserved admin connection. Importing this package imports neither psycopg
nor redis: each probe imports its client library when it is built or run.

See docs/health.md for the probes, the endpoints and the role set-up SQL.
"""

from sendguard.health._admin import AdminConnection, AdminUnavailable
from sendguard.health._config import load_config, probes_from_config
from sendguard.health._endpoints import ASGIApp, asgi_app, wsgi_app
from sendguard.health._events import ProbeChecked, ProbeStatusChanged
from sendguard.health._heartbeat import (
    HeartbeatProbe,
    HeartbeatSource,
    MemoryHeartbeats,
    RedisHeartbeats,
)
from sendguard.health._http import HttpProbe
from sendguard.health._postgres import (
    PoolLike,
    PoolProbe,
    PostgresProbe,
    Refusal,
    classify_connect_error,
    instrument_pool,
)
from sendguard.health._probe import BaseProbe, FunctionProbe, Probe, probe, run_probe
from sendguard.health._queues import BacklogProbe, CeleryBacklogProbe, RqBacklogProbe
from sendguard.health._redis import RedisProbe
from sendguard.health._registry import HealthRegistry
from sendguard.health._report import (
    CONTENT_TYPE,
    CheckReport,
    CheckState,
    HealthReport,
    aggregate,
)
from sendguard.health._result import Detail, ProbeResult, Status, Thresholds
from sendguard.health._saturation import Saturation, SaturationPolicy, SaturationProbe
from sendguard.health._sessions import (
    KillOutcome,
    KillReport,
    Session,
    SessionFilter,
    kill_sessions,
    list_sessions,
)
from sendguard.health._tls import TlsProbe, tls_probes
from sendguard.health._traffic import TrafficCounter, TrafficFloorProbe

__all__ = [
    "CONTENT_TYPE",
    "ASGIApp",
    "AdminConnection",
    "AdminUnavailable",
    "BacklogProbe",
    "BaseProbe",
    "CeleryBacklogProbe",
    "CheckReport",
    "CheckState",
    "Detail",
    "FunctionProbe",
    "HealthRegistry",
    "HealthReport",
    "HeartbeatProbe",
    "HeartbeatSource",
    "HttpProbe",
    "KillOutcome",
    "KillReport",
    "MemoryHeartbeats",
    "PoolLike",
    "PoolProbe",
    "PostgresProbe",
    "Probe",
    "ProbeChecked",
    "ProbeResult",
    "ProbeStatusChanged",
    "RedisHeartbeats",
    "RedisProbe",
    "Refusal",
    "RqBacklogProbe",
    "Saturation",
    "SaturationPolicy",
    "SaturationProbe",
    "Session",
    "SessionFilter",
    "Status",
    "Thresholds",
    "TlsProbe",
    "TrafficCounter",
    "TrafficFloorProbe",
    "aggregate",
    "asgi_app",
    "classify_connect_error",
    "instrument_pool",
    "kill_sessions",
    "list_sessions",
    "load_config",
    "probe",
    "probes_from_config",
    "run_probe",
    "tls_probes",
    "wsgi_app",
]
