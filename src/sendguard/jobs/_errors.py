"""What `sendguard.jobs` raises.

    SendguardError
    ├── PayloadRejected (ValueError)      a job payload broke the type policy or a byte budget
    └── LedgerError                       the idempotency ledger would not run a call
        ├── AlreadyInProgress             another attempt holds the key's lease (retry_after)
        ├── OutcomeUnknown                an earlier attempt may or may not have happened:
        │                                 an operator decides (never retried automatically)
        ├── PayloadMismatch (ValueError)  the key was used before for a different payload
        └── ResultNotRecorded             done before, but its result was not JSON-native,
                                          so there is nothing to replay

A store that cannot be reached raises `sendguard.StoreUnavailable` where the documented
direction is to refuse (the ledger, by default); heartbeats never raise for it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sendguard._core.errors import SendguardError

if TYPE_CHECKING:
    from sendguard.jobs._ledger_core import LedgerEntry

__all__ = [
    "AlreadyInProgress",
    "LedgerError",
    "OutcomeUnknown",
    "PayloadMismatch",
    "PayloadRejected",
    "ResultNotRecorded",
    "Violation",
]


class Violation(enum.Enum):
    """Which rule a rejected payload broke."""

    TYPE = "type"
    """A value that is not JSON-native nor on the allow-list (an ORM model, bytes, a set)."""
    KEY = "key"
    """A dict key that is not a str."""
    VALUE = "value"
    """A value JSON cannot carry as is: NaN, infinity, an int of thousands of digits."""
    DEPTH = "depth"
    """Nested deeper than the policy allows (often a circular reference)."""
    SIZE = "size"
    """The job's payload is over its byte budget."""
    BATCH = "batch"
    """The jobs of one batch together are over the batch's byte budget."""


class PayloadRejected(SendguardError, ValueError):
    """A job payload was refused at enqueue; nothing was written to the queue.

    Attributes:
        function: the job's function (dotted name, or the task name for Celery).
        queue: the queue it was headed for (None when not known).
        path: where in the payload the problem is: ``args[0]``, ``kwargs['email']['body']``
            (empty for a batch).
        violation: the rule broken.
        size: bytes counted when the check stopped. Over a budget the check stops early,
            so this is a lower bound on the payload's JSON size.
        budget: the byte budget that applied (job or batch), or None for a type error.
        advice: what to do instead (``pass its id``).
    """

    def __init__(
        self,
        message: str,
        *,
        function: str,
        queue: str | None,
        path: str,
        violation: Violation,
        size: int,
        budget: int | None,
        advice: str,
    ) -> None:
        super().__init__(message)
        self.function = function
        self.queue = queue
        self.path = path
        self.violation = violation
        self.size = size
        self.budget = budget
        self.advice = advice


class LedgerError(SendguardError):
    """The idempotency ledger did not let a call run. `entry` is the ledger's record."""

    def __init__(self, message: str, *, key: str, entry: LedgerEntry | None) -> None:
        super().__init__(message)
        self.key = key
        self.entry = entry


class AlreadyInProgress(LedgerError):
    """Another attempt with the same key is running (its lease has `retry_after` seconds left)."""

    def __init__(
        self, message: str, *, key: str, entry: LedgerEntry | None, retry_after: float
    ) -> None:
        super().__init__(message, key=key, entry=entry)
        self.retry_after = max(0.0, retry_after)


class OutcomeUnknown(LedgerError):
    """An earlier attempt may have had its effect or not; it is listed for an operator.

    Raised instead of running the call again: resending a message that may have gone is
    how replays send duplicates. Resolve it with `Ledger.resolve` (or
    ``sendguard jobs resolve``) once someone knows what happened.
    """


class PayloadMismatch(LedgerError, ValueError):
    """The key was used before for a call with a different payload (a key collision)."""


class ResultNotRecorded(LedgerError):
    """The call completed before, but its result was not JSON-native, so it was not kept."""
