"""The records' values: emails, lists, delivery rows and states, precomputed analytics."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Analytics", "Delivery", "DeliveryState", "Email", "MailingList"]


class DeliveryState(enum.Enum):
    """Where one message (one email to one recipient) stands."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    """The provider may or may not have it (connection lost after the body): never resent."""
    DEFERRED = "deferred"
    """Known not sent (providers unavailable): safe to send again."""


@dataclass(frozen=True, slots=True)
class Email:
    """An email: its id, content and public archive slug."""

    id: int
    subject: str
    body: str
    slug: str
    created_at: float


@dataclass(frozen=True, slots=True)
class MailingList:
    """A list of recipients."""

    id: int
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message's row in ``deliveries``, with its recipient's address."""

    email_id: int
    recipient_id: int
    address: str
    state: DeliveryState
    provider: str | None
    detail: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class Analytics:
    """An email's precomputed figures: messages per state, and per provider and state."""

    email_id: int
    states: dict[str, int]
    providers: dict[str, dict[str, int]] = field(default_factory=dict)
    as_of: float = 0.0
    """The latest delivery update the figures include (epoch seconds)."""
    refreshed_at: float = 0.0

    @property
    def total(self) -> int:
        """Messages counted, whatever their state."""
        return sum(self.states.values())

    def to_json(self) -> dict[str, Any]:
        """The API's representation."""
        return {
            "email_id": self.email_id,
            "total": self.total,
            "states": dict(self.states),
            "providers": {name: dict(counts) for name, counts in self.providers.items()},
            "as_of": self.as_of,
            "refreshed_at": self.refreshed_at,
        }
