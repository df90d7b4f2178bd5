"""Job guards: lean payloads, backlog tools, idempotent sends and cron heartbeats.

    from sendguard.jobs import Heartbeats, Ledger, PayloadGuard, PayloadPolicy
    from sendguard.jobs.rq import LeanQueue             # or sendguard.jobs.celery.LeanTask

    queue = LeanQueue("five_minutes", connection=redis_conn)
    queue.enqueue(send_batch, email.id, recipient_ids)   # ids: accepted
    queue.enqueue(send_batch, email, recipients)         # PayloadRejected: args[0] is
                                                         # app.models.Email: pass its id
    ledger = Ledger("redis://localhost:6379/0", name="sends")

    @ledger.idempotent(key="send:{message_id}")
    def send(message_id: str, to: str) -> str: ...      # at most once per message id

    heartbeats = Heartbeats("redis://localhost:6379/0")

    @heartbeats.heartbeat("digest", every="5m", grace="1m")
    def digest() -> None: ...                           # `sendguard cron status` sees it

Backlogs: ``sendguard jobs inspect`` and ``sendguard jobs purge`` (`inspect_backlog`,
`purge_backlog`) read RQ's keys without deserialising a job. Importing this package
imports none of redis, rq, celery or psycopg: the adapters and stores import them when
used (``sendguard.jobs.rq``, ``.celery``, ``.redis_store``, ``.postgres_store``).

See docs/jobs.md.
"""

from sendguard.jobs._backlog import BacklogReport, FunctionStats, RegistryStats, inspect_backlog
from sendguard.jobs._errors import (
    AlreadyInProgress,
    LedgerError,
    OutcomeUnknown,
    PayloadMismatch,
    PayloadRejected,
    ResultNotRecorded,
    Violation,
)
from sendguard.jobs._events import (
    HeartbeatRecorded,
    LedgerDecision,
    LedgerTransition,
    PayloadNearBudget,
    PayloadRefused,
)
from sendguard.jobs._heartbeat_core import CronState, CronStatus, HeartbeatRecord, assess
from sendguard.jobs._heartbeats import (
    HeartbeatCall,
    Heartbeats,
    HeartbeatStore,
    MemoryHeartbeatStore,
    default_heartbeats,
    heartbeat,
    open_heartbeat_store,
)
from sendguard.jobs._idempotent import Attempt, IdempotentCall, default_ledger, idempotent
from sendguard.jobs._ledger import Ledger, fingerprint, open_ledger_store
from sendguard.jobs._ledger_core import Decision, EntryState, LedgerEntry
from sendguard.jobs._ledger_policy import LedgerPolicy
from sendguard.jobs._ledger_store import LedgerStore, MemoryLedgerStore
from sendguard.jobs._payload_policy import KIB, MIB, PayloadPolicy
from sendguard.jobs._payloads import PayloadCheck, PayloadGuard, default_guard, lean_payloads
from sendguard.jobs._purge import PurgeFilter, PurgeReport, purge_backlog
from sendguard.jobs._rq_layout import REGISTRIES, JobInfo

__all__ = [
    "KIB",
    "MIB",
    "REGISTRIES",
    "AlreadyInProgress",
    "Attempt",
    "BacklogReport",
    "CronState",
    "CronStatus",
    "Decision",
    "EntryState",
    "FunctionStats",
    "HeartbeatCall",
    "HeartbeatRecord",
    "HeartbeatRecorded",
    "HeartbeatStore",
    "Heartbeats",
    "IdempotentCall",
    "JobInfo",
    "Ledger",
    "LedgerDecision",
    "LedgerEntry",
    "LedgerError",
    "LedgerPolicy",
    "LedgerStore",
    "LedgerTransition",
    "MemoryHeartbeatStore",
    "MemoryLedgerStore",
    "OutcomeUnknown",
    "PayloadCheck",
    "PayloadGuard",
    "PayloadMismatch",
    "PayloadNearBudget",
    "PayloadPolicy",
    "PayloadRefused",
    "PayloadRejected",
    "PurgeFilter",
    "PurgeReport",
    "RegistryStats",
    "ResultNotRecorded",
    "Violation",
    "assess",
    "default_guard",
    "default_heartbeats",
    "default_ledger",
    "fingerprint",
    "heartbeat",
    "idempotent",
    "inspect_backlog",
    "lean_payloads",
    "open_heartbeat_store",
    "open_ledger_store",
    "purge_backlog",
]
