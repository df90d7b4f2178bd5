"""Sessions on the server, and ending them: what ``sendguard db top`` and ``db kill`` run.

Both read ``pg_stat_activity`` over the admin connection, see client sessions only, and
never include the admin session itself. For each session Postgres's own rule says
whether this role may signal it: a superuser may signal any session; another role only
sessions of roles whose privileges it has, or any non-superuser session with
``pg_signal_backend``. Sessions it may not signal are listed with the reason and left
alone.

`kill_sessions` asks gently first: it cancels the running query of every selected
session that has one, waits up to a grace period, then terminates the sessions that
still match the filter (a session whose query was cancelled and that went back to
``idle`` no longer matches ``--state active``; one selected by role alone still does).
A session with no query running (idle, idle in transaction) has nothing to cancel and
is terminated at once. It is a dry run unless `execute` is true.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard.health._admin import AdminConnection

__all__ = ["STATES", "KillOutcome", "KillReport", "Session", "SessionFilter", "kill_sessions",
           "list_sessions"]  # fmt: skip

STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)
"""The values of ``pg_stat_activity.state`` for a client session."""
_RUNNING = ("active", "fastpath function call")
"""States with a query a cancel can stop (an idle session has nothing to cancel)."""

SESSIONS_SQL = """
SELECT a.pid, extract(epoch FROM a.backend_start)::float8, coalesce(a.usename::text, ''),
       coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local'),
       coalesce(a.datname::text, ''), coalesce(a.state, 'unknown'),
       extract(epoch FROM now() - a.xact_start)::float8,
       extract(epoch FROM now() - a.query_start)::float8,
       extract(epoch FROM now() - a.state_change)::float8,
       coalesce(a.wait_event_type || ':' || a.wait_event, ''), coalesce(a.query, ''),
       CASE
         WHEN current_setting('is_superuser') = 'on' THEN NULL
         WHEN a.usesysid IS NULL THEN 'its role is unknown'
         WHEN (SELECT r.rolsuper FROM pg_roles r WHERE r.oid = a.usesysid)
           THEN 'a superuser''s session: only a superuser may signal it'
         WHEN pg_has_role(current_user, a.usesysid, 'USAGE') THEN NULL
         WHEN pg_has_role(current_user, 'pg_signal_backend', 'USAGE') THEN NULL
         ELSE 'role ' || quote_ident(a.usename::text) || ': this role has neither its '
              'privileges nor pg_signal_backend'
       END
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
"""


@dataclass(frozen=True, slots=True)
class Session:
    """One client session. Ages are seconds (None when not in a transaction or query)."""

    pid: int
    backend_start: float
    role: str
    application: str
    client: str
    database: str
    state: str
    transaction_age: float | None
    query_age: float | None
    state_age: float | None
    wait: str
    query: str
    not_permitted: str | None = None
    """Why this role may not signal the session (None: it may)."""

    @property
    def may_signal(self) -> bool:
        """Whether the admin role may cancel or terminate this session."""
        return self.not_permitted is None

    @property
    def key(self) -> tuple[int, float]:
        """(pid, backend start): a pid alone can be reused by a later session."""
        return self.pid, self.backend_start

    @property
    def longest_age(self) -> float:
        """The older of its transaction and its query (0 when neither runs)."""
        return max(self.transaction_age or 0.0, self.query_age or 0.0)


def _none_or(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def list_sessions(admin: AdminConnection) -> list[Session]:
    """Every client session but the admin's own, longest-running first."""
    sessions = []
    for row in admin.execute(SESSIONS_SQL):
        pid, start, role, app, client, database, state = row[:7]
        xact, query_age, state_age = (_none_or(value) for value in row[7:10])
        wait, query, not_permitted = row[10:13]
        session = Session(int(pid), float(start), role, app, client, database, state,
                          xact, query_age, state_age, wait, query, not_permitted)  # fmt: skip
        sessions.append(session)
    return sorted(sessions, key=lambda s: (-s.longest_age, s.pid))


def _names(field: str, values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"SessionFilter.{field} must be a sequence of names, got {values!r}")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class SessionFilter:
    """Which sessions to act on; every given criterion must hold (an empty one is ignored).

    `older_than` is the time in the current state in seconds (how long an active query
    has run, or an idle transaction has sat). `applications` are shell-style patterns
    (``worker-*``).
    """

    older_than: float | None = None
    states: Sequence[str] = ()
    roles: Sequence[str] = ()
    applications: Sequence[str] = ()
    databases: Sequence[str] = ()
    pids: Sequence[int] = ()

    def __post_init__(self) -> None:
        if self.older_than is not None and not (
            isinstance(self.older_than, int | float)
            and math.isfinite(self.older_than)
            and self.older_than >= 0
        ):
            raise ConfigError(
                f"SessionFilter.older_than must be seconds >= 0, got {self.older_than!r}"
            )
        for field in ("states", "roles", "applications", "databases"):
            object.__setattr__(self, field, _names(field, getattr(self, field)))
        unknown = [state for state in self.states if state not in STATES]
        if unknown:
            raise ConfigError(
                f"SessionFilter.states has unknown states {unknown!r}; known: {', '.join(STATES)}"
            )
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in self.pids):
            raise ConfigError(f"SessionFilter.pids must be process ids, got {self.pids!r}")
        object.__setattr__(self, "pids", tuple(self.pids))

    @property
    def is_empty(self) -> bool:
        """True when it would select every session."""
        return self.older_than is None and not (
            self.states or self.roles or self.applications or self.databases or self.pids
        )

    def matches(self, session: Session) -> bool:
        """Whether `session` meets every criterion."""
        if self.older_than is not None and (session.state_age or 0.0) < self.older_than:
            return False
        if self.states and session.state not in self.states:
            return False
        if self.roles and session.role not in self.roles:
            return False
        if self.databases and session.database not in self.databases:
            return False
        if self.pids and session.pid not in self.pids:
            return False
        return not self.applications or any(
            fnmatch.fnmatchcase(session.application, pattern) for pattern in self.applications
        )


@dataclass(frozen=True, slots=True)
class KillOutcome:
    """What happened (or would happen, in a dry run) to one selected session."""

    session: Session
    action: str
    """``cancelled``, ``terminated``, ``gone`` (it ended on its own), ``skipped``, ``not
    permitted``; in a dry run ``would cancel, then terminate``, ``would terminate``,
    ``would cancel`` or ``would skip``."""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class KillReport:
    """The outcome for every selected session."""

    outcomes: tuple[KillOutcome, ...]
    dry_run: bool

    def count(self, action: str) -> int:
        """How many sessions ended with `action`."""
        return sum(outcome.action == action for outcome in self.outcomes)

    @property
    def refused(self) -> tuple[KillOutcome, ...]:
        """The sessions this role may not signal."""
        return tuple(o for o in self.outcomes if o.action == "not permitted")


def _signal(admin: AdminConnection, function: str, pid: int) -> bool:
    sql = f"SELECT {function}(%s)"
    rows = admin.execute(sql, [pid])
    return bool(rows and rows[0][0])


def _settle(
    admin: AdminConnection,
    sessions: dict[tuple[int, float], Session],
    selection: SessionFilter | None,
    deadline: float,
    clock: Clock,
    poll: float,
) -> dict[tuple[int, float], Session | None]:
    """Wait until each session has ended (or, with a `selection`, no longer matches it);
    return those that did by `deadline`, with what they are now (None: ended)."""
    settled: dict[tuple[int, float], Session | None] = {}
    while True:
        listed = {s.key: s for s in list_sessions(admin)}
        for key in sessions.keys() - settled.keys():
            current = listed.get(key)
            if current is None or (selection is not None and not selection.matches(current)):
                settled[key] = current
        if len(settled) == len(sessions) or clock.monotonic() >= deadline:
            return settled
        clock.sleep(poll)


def _plan(session: Session, cancel_only: bool) -> KillOutcome:
    if session.state not in _RUNNING:
        if cancel_only:
            return KillOutcome(session, "would skip", "no query to cancel")
        return KillOutcome(session, "would terminate", "no query to cancel")
    return KillOutcome(session, "would cancel" if cancel_only else "would cancel, then terminate")


def kill_sessions(
    admin: AdminConnection,
    selection: SessionFilter,
    *,
    execute: bool = False,
    cancel_only: bool = False,
    grace: float = 2.0,
    clock: Clock = SYSTEM_CLOCK,
    poll: float = 0.05,
) -> KillReport:
    """Cancel, then terminate, the sessions `selection` matches (a dry run by default)."""
    if not (isinstance(grace, int | float) and 0 <= grace <= 600):
        raise ConfigError(f"grace must be 0 to 600 seconds, got {grace!r}")
    selected = [s for s in list_sessions(admin) if selection.matches(s)]
    refused = [KillOutcome(s, "not permitted", s.not_permitted or "") for s in selected
               if not s.may_signal]  # fmt: skip
    allowed = [s for s in selected if s.may_signal]
    if not execute:
        return KillReport(tuple([_plan(s, cancel_only) for s in allowed] + refused), True)
    outcomes: dict[tuple[int, float], KillOutcome] = {}
    running = [s for s in allowed if s.state in _RUNNING]
    for session in running:
        if not _signal(admin, "pg_cancel_backend", session.pid):
            outcomes[session.key] = KillOutcome(session, "gone", "it ended before the cancel")
    waiting = {s.key: s for s in running if s.key not in outcomes}
    deadline = clock.monotonic() + grace
    settled = _settle(admin, waiting, selection, deadline, clock, poll) if waiting else {}
    waiting.update((s.key, s) for s in allowed if s.state not in _RUNNING)
    for key, current in settled.items():
        why = "it ended" if current is None else f"it is now {current.state}"
        outcomes[key] = KillOutcome(waiting.pop(key), "cancelled", why)
    terminated: dict[tuple[int, float], Session] = {}
    for key, session in waiting.items():
        if cancel_only and session.state in _RUNNING:
            outcomes[key] = KillOutcome(session, "cancelled", "still matches; not terminated")
        elif cancel_only:
            outcomes[key] = KillOutcome(session, "skipped", "no query to cancel")
        elif _signal(admin, "pg_terminate_backend", session.pid):
            terminated[key] = session
        else:
            outcomes[key] = KillOutcome(session, "gone", "it ended before the terminate")
    gone = _settle(admin, terminated, None, clock.monotonic() + max(grace, 1.0), clock, poll)
    for key, session in terminated.items():
        detail = (
            f"still matched after {grace:g}s" if session.state in _RUNNING else "no query to cancel"
        )
        if key not in gone:
            detail += "; told to exit, not gone yet"
        outcomes[key] = KillOutcome(session, "terminated", detail)
    ordered = [outcomes[s.key] for s in allowed]
    return KillReport(tuple(ordered + refused), False)
