"""`Records`: emails, lists, recipients, deliveries and analytics, in SQLite or Postgres.

    records = Records.open(config)            # Postgres when config.postgres_dsn, else SQLite
    email = records.create_email("Spring news", "<p>Hello</p>")
    mailing = records.create_list("customers", addresses)          # bulk insert
    queued = records.queue_deliveries(email.id, mailing.id)        # new ids only, one statement

Both back ends share the schema and the statements (see `_sql`): emails (id, subject,
body, archive slug, created_at), lists, recipients (id, list, address), deliveries (one
row per email and recipient: ``queued``, ``sending``, ``sent``, ``rejected``,
``unknown`` or ``deferred``, with the provider and a detail) and analytics (one JSON
document per email, precomputed by the analytics cron job). Bulk operations are set-based
or batched (``INSERT ... SELECT``, ``executemany``), so a list of 10,000 recipients is
created and queued in a few statements. Every method is safe to call from any thread.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sendguard import SYSTEM_CLOCK, Clock
from sendguard.pipeline._models import Analytics, Delivery, DeliveryState, Email, MailingList
from sendguard.pipeline._sql import Backend, PostgresBackend, SqliteBackend

if TYPE_CHECKING:
    from sendguard.pipeline.config import PipelineConfig

__all__ = ["Analytics", "Delivery", "DeliveryState", "Email", "MailingList", "Records"]

_CHUNK = 1000
_SETTLE = 2.0
"""Seconds after an email's last delivery update during which its analytics are refreshed
again, so an update committed out of order is never left out."""


def _slug(subject: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")[:48].strip("-")
    return f"{words or 'email'}-{secrets.token_hex(4)}"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Records:
    """The pipeline's records on one `Backend` (see the module doc)."""

    def __init__(self, backend: Backend, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.backend = backend
        self.clock = clock

    @classmethod
    def open(
        cls, config: PipelineConfig, *, clock: Clock = SYSTEM_CLOCK, migrate: bool = True
    ) -> Records:
        """Postgres when `config.postgres_dsn` is set, else SQLite at `config.sqlite_path`."""
        if config.postgres_dsn:
            return cls.postgres(config.postgres_dsn, clock=clock, migrate=migrate)
        return cls.sqlite(config.sqlite_path, clock=clock, migrate=migrate)

    @classmethod
    def sqlite(
        cls, path: str = ":memory:", *, clock: Clock = SYSTEM_CLOCK, migrate: bool = True
    ) -> Records:
        """Records in a SQLite file (``:memory:``: this process only)."""
        records = cls(SqliteBackend(path), clock=clock)
        if migrate:
            records.migrate()
        return records

    @classmethod
    def postgres(cls, dsn: str, *, clock: Clock = SYSTEM_CLOCK, migrate: bool = True) -> Records:
        """Records in Postgres at `dsn` (``postgresql://...``)."""
        records = cls(PostgresBackend(dsn), clock=clock)
        if migrate:
            records.migrate()
        return records

    def __repr__(self) -> str:
        return f"Records({self.backend.label})"

    def migrate(self) -> None:
        """Create the tables if they are missing."""
        self.backend.migrate()

    def close(self) -> None:
        """Release the database connections."""
        self.backend.close()

    def ping(self) -> bool:
        """One trivial query: True when the database answers."""
        with self.backend.transaction() as cursor:
            return cursor.execute("SELECT 1") == [(1,)]

    # --- emails and lists --------------------------------------------------------------

    def create_email(self, subject: str, body: str) -> Email:
        """Store a new email; it gets an id and a public archive slug."""
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError(f"an email needs a subject, got {subject!r}")
        if not isinstance(body, str):
            raise ValueError(f"an email body is text, got {type(body).__name__}")
        slug, now = _slug(subject), self.clock.wall()
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "INSERT INTO emails (subject, body, slug, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (subject, body, slug, now),
            )
        return Email(int(rows[0][0]), subject, body, slug, now)

    def email(self, email_id: int) -> Email | None:
        """The email with `email_id`, or None."""
        return self._email("id = ?", email_id)

    def email_by_slug(self, slug: str) -> Email | None:
        """The email whose archive slug is `slug`, or None."""
        return self._email("slug = ?", slug)

    def _email(self, where: str, value: object) -> Email | None:
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                f"SELECT id, subject, body, slug, created_at FROM emails WHERE {where}", (value,)
            )
        if not rows:
            return None
        row = rows[0]
        return Email(int(row[0]), row[1], row[2], row[3], float(row[4]))

    def create_list(self, name: str, addresses: Iterable[str]) -> MailingList:
        """A new list with `addresses` (duplicates dropped), inserted in batches."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a list needs a name, got {name!r}")
        unique = list(dict.fromkeys(address.strip().lower() for address in addresses))
        for address in unique:
            local, _, domain = address.partition("@")
            if not local or not domain or "@" in domain or any(c.isspace() for c in address):
                raise ValueError(f"not an email address: {address!r}")
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "INSERT INTO lists (name, created_at) VALUES (?, ?) RETURNING id",
                (name, self.clock.wall()),
            )
            list_id = int(rows[0][0])
            for chunk in _chunks(unique):
                cursor.executemany(
                    "INSERT INTO recipients (list_id, address) VALUES (?, ?)",
                    [(list_id, address) for address in chunk],
                )
        return MailingList(list_id, name, len(unique))

    def mailing_list(self, list_id: int) -> MailingList | None:
        """The list with `list_id` and its size, or None."""
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "SELECT l.id, l.name, (SELECT COUNT(*) FROM recipients r WHERE r.list_id = l.id) "
                "FROM lists l WHERE l.id = ?",
                (list_id,),
            )
        return MailingList(int(rows[0][0]), rows[0][1], int(rows[0][2])) if rows else None

    def recipients(self, recipient_ids: Sequence[int]) -> dict[int, str]:
        """Addresses by recipient id (ids that do not exist are left out)."""
        found: dict[int, str] = {}
        with self.backend.transaction() as cursor:
            for chunk in _chunks(recipient_ids):
                rows = cursor.execute(
                    f"SELECT id, address FROM recipients WHERE {self.backend.any_of('id')}",
                    (self.backend.id_list(chunk),),
                )
                found.update((int(row[0]), row[1]) for row in rows)
        return found

    # --- deliveries --------------------------------------------------------------------

    def queue_deliveries(
        self, email_id: int, list_id: int, *, stale_after: float = 900.0
    ) -> list[int]:
        """Queue `email_id` for every recipient of `list_id` not sent or in flight.

        New recipients get a ``queued`` row; ``deferred`` rows (known not sent) go back to
        ``queued``, and so do ``queued`` or ``sending`` rows untouched for `stale_after`
        seconds (their job was lost: the ledger still stops a second send). Other rows
        are left alone, so sending an email twice queues nothing twice. Returns the
        queued recipient ids, in order: one statement.
        """
        now = self.clock.wall()
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "INSERT INTO deliveries (email_id, recipient_id, state, detail, updated_at) "
                "SELECT ?, r.id, 'queued', '', ? FROM recipients r WHERE r.list_id = ? "
                "ON CONFLICT (email_id, recipient_id) DO UPDATE SET state = 'queued', "
                "detail = '', updated_at = excluded.updated_at "
                "WHERE deliveries.state = 'deferred' OR (deliveries.state IN "
                "('queued', 'sending') AND deliveries.updated_at < ?) RETURNING recipient_id",
                (email_id, now, list_id, now - stale_after),
            )
        return sorted(int(row[0]) for row in rows)

    def mark(
        self,
        email_id: int,
        recipient_ids: Sequence[int],
        state: DeliveryState,
        *,
        only_from: Sequence[DeliveryState] = (),
    ) -> int:
        """Move the given rows to `state` (only rows in `only_from`, if given); how many moved."""
        sql = (
            "UPDATE deliveries SET state = ?, updated_at = ? WHERE email_id = ? AND "
            + self.backend.any_of("recipient_id")
        )
        if only_from:
            sql += " AND state IN (" + ", ".join("?" for _ in only_from) + ")"
        moved = 0
        with self.backend.transaction() as cursor:
            for chunk in _chunks(recipient_ids):
                params = [state.value, self.clock.wall(), email_id, self.backend.id_list(chunk)]
                rows = cursor.execute(
                    sql + " RETURNING recipient_id", [*params, *(s.value for s in only_from)]
                )
                moved += len(rows)
        return moved

    def record(
        self,
        email_id: int,
        results: Sequence[tuple[int, DeliveryState, str | None, str]],
    ) -> None:
        """Write outcomes: (recipient id, state, provider, detail) per message, one batch.

        A provider of None keeps the one already recorded: a replayed job whose ledger
        entry is unknown learns no provider, and must not erase which one left it unknown.
        """
        if not results:
            return
        now = self.clock.wall()
        with self.backend.transaction() as cursor:
            cursor.executemany(
                "UPDATE deliveries SET state = ?, provider = COALESCE(?, provider), "
                "detail = ?, updated_at = ? "
                "WHERE email_id = ? AND recipient_id = ?",
                [
                    (state.value, provider, detail[:500], now, email_id, recipient_id)
                    for recipient_id, state, provider, detail in results
                ],
            )

    def deliveries(self, email_id: int, states: Sequence[DeliveryState] = ()) -> list[Delivery]:
        """An email's delivery rows (those in `states`, if given), by recipient id."""
        sql = (
            "SELECT d.email_id, d.recipient_id, r.address, d.state, d.provider, d.detail, "
            "d.updated_at FROM deliveries d JOIN recipients r ON r.id = d.recipient_id "
            "WHERE d.email_id = ?"
        )
        if states:
            sql += " AND d.state IN (" + ", ".join("?" for _ in states) + ")"
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                sql + " ORDER BY d.recipient_id", [email_id, *(s.value for s in states)]
            )
        return [
            Delivery(int(r[0]), int(r[1]), r[2], DeliveryState(r[3]), r[4], r[5], float(r[6]))
            for r in rows
        ]

    def state_counts(self, email_id: int) -> dict[DeliveryState, int]:
        """Messages of `email_id` per state (states with none are left out)."""
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "SELECT state, COUNT(*) FROM deliveries WHERE email_id = ? GROUP BY state",
                (email_id,),
            )
        return {DeliveryState(state): int(count) for state, count in rows}

    # --- analytics (computed by the cron job, read by the API) --------------------------

    def stale_analytics(self) -> list[int]:
        """Emails whose deliveries changed since their analytics were computed."""
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "SELECT d.email_id FROM deliveries d LEFT JOIN analytics a "
                "ON a.email_id = d.email_id GROUP BY d.email_id, a.as_of, a.refreshed_at "
                "HAVING a.as_of IS NULL OR MAX(d.updated_at) > a.as_of "
                "OR a.refreshed_at < a.as_of + ? ORDER BY d.email_id",
                (_SETTLE,),
            )
        return [int(row[0]) for row in rows]

    def compute_analytics(self, email_ids: Sequence[int]) -> list[Analytics]:
        """Count the deliveries of `email_ids` (one grouped query per thousand emails)."""
        states: dict[int, dict[str, int]] = {}
        providers: dict[int, dict[str, dict[str, int]]] = {}
        as_of: dict[int, float] = {}
        now = self.clock.wall()
        with self.backend.transaction() as cursor:
            for chunk in _chunks(email_ids):
                rows = cursor.execute(
                    "SELECT email_id, state, provider, COUNT(*), MAX(updated_at) "
                    f"FROM deliveries WHERE {self.backend.any_of('email_id')} "
                    "GROUP BY email_id, state, provider",
                    (self.backend.id_list(chunk),),
                )
                for raw_id, state, provider, count, latest in rows:
                    email_id = int(raw_id)
                    per_state = states.setdefault(email_id, {})
                    per_state[state] = per_state.get(state, 0) + int(count)
                    per_provider = providers.setdefault(email_id, {})
                    if provider is not None:
                        counts = per_provider.setdefault(provider, {})
                        counts[state] = counts.get(state, 0) + int(count)
                    as_of[email_id] = max(as_of.get(email_id, 0.0), float(latest))
        return [
            Analytics(email_id, states[email_id], providers[email_id], as_of[email_id], now)
            for email_id in sorted(states)
        ]

    def save_analytics(self, computed: Sequence[Analytics]) -> None:
        """Store precomputed analytics (replacing earlier ones)."""
        with self.backend.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO analytics (email_id, data, as_of, refreshed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (email_id) DO UPDATE SET data = excluded.data, "
                "as_of = excluded.as_of, refreshed_at = excluded.refreshed_at",
                [
                    (
                        item.email_id,
                        json.dumps({"states": item.states, "providers": item.providers}),
                        item.as_of,
                        item.refreshed_at,
                    )
                    for item in computed
                ],
            )

    def analytics(self, email_id: int) -> Analytics | None:
        """The stored analytics of `email_id` (never computed here), or None."""
        with self.backend.transaction() as cursor:
            rows = cursor.execute(
                "SELECT data, as_of, refreshed_at FROM analytics WHERE email_id = ?", (email_id,)
            )
        if not rows:
            return None
        data = json.loads(rows[0][0])
        return Analytics(
            email_id, data["states"], data["providers"], float(rows[0][1]), float(rows[0][2])
        )
