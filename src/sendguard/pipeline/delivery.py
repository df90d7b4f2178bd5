"""`Deliverer`: one message, at most once, through the first SMTP provider that takes it.

Each message goes through, in order:

1. the idempotency ledger (`sendguard.jobs.Ledger`, keyed by ``message.key``): a key
   already sent, rejected or unknown is a `Outcome.DUPLICATE` and SMTP is not touched;
2. the pacer (`sendguard.ratelimit.Pacer`, keyed by the recipient's domain), which waits
   for the domain's next slot rather than refusing;
3. the providers in order, each behind its own circuit breaker (``provider:<name>`` in
   the `BreakerRegistry`): an open breaker fails over to the next provider at once; a
   transient error (connection failure, 4xx) is retried with jittered backoff under the
   retry budget (`sendguard.backoff.Retrier`), then fails over.

How it ends, and what the ledger keeps:

| outcome | when | ledger entry |
|---|---|---|
| SENT | a provider answered 2xx after the body | completed, "sent" |
| REJECTED | a 5xx about the message: no retry, no failover | completed, "rejected" |
| UNKNOWN | silence after the body: maybe delivered; no retry, no failover | unknown |
| DEFERRED | no provider took it now (see below) | failed |
| DUPLICATE | the ledger has it handled, or another attempt holds it now | unchanged |

A message is DEFERRED when every breaker is open, transient errors outlast the retries or
the budget, the pacing wait is too long, or the ledger cannot be reached: it is known not
sent, and a later job may send it. An UNKNOWN one is listed (`Ledger.unknowns`) until an
operator resolves it.

Transient errors and unknowns count as failures of the provider's breaker; a permanent
rejection is the provider working (it answered about the message), so it does not.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sendguard import (
    SYSTEM_CLOCK,
    BreakerOpen,
    Clock,
    ConfigError,
    RateLimited,
    StoreUnavailable,
)
from sendguard.backoff import Budgets, Retrier, RetryPolicy
from sendguard.breakers import BreakerRegistry
from sendguard.breakers import Outcome as CallOutcome
from sendguard.jobs import (
    AlreadyInProgress,
    Attempt,
    Ledger,
    LedgerError,
    OutcomeUnknown,
    PayloadMismatch,
)
from sendguard.pipeline.smtp import (
    SmtpError,
    SmtpPermanent,
    SmtpProvider,
    SmtpTransient,
    SmtpUnknown,
)
from sendguard.ratelimit import Pacer

__all__ = ["Deliverer", "DeliveryResult", "OutboundMessage", "Outcome"]

_KEY = re.compile(r"[\x21-\x7e]{1,200}")
_ADDRESS = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+")
"""Printable ASCII without spaces, ``<`` or ``>``, around an ``@``."""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message to one recipient.

    Attributes:
        key: the idempotency key, ``f"send:{email_id}:{recipient_id}"``; it travels as the
            ``X-Sendguard-Key`` header and derives the ``Message-ID``.
        sender, recipient: envelope and header addresses.
        subject, body: the content (the body as plain text).
    """

    key: str
    sender: str
    recipient: str
    subject: str
    body: str

    def __post_init__(self) -> None:
        for name in ("key", "sender", "recipient", "subject", "body"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"OutboundMessage.{name} must be a str, got {value!r}")
        if not _KEY.fullmatch(self.key):
            raise ValueError(
                f"OutboundMessage.key must be 1-200 printable ASCII characters without spaces, "
                f"got {self.key!r}"
            )
        for name in ("sender", "recipient"):  # ASCII: no SMTPUTF8 needed of any relay
            value = getattr(self, name)
            if not _ADDRESS.fullmatch(value):
                raise ValueError(f"OutboundMessage.{name} must be an ASCII address, got {value!r}")
        if len(self.subject.splitlines()) > 1 or not self.subject.isprintable():
            raise ValueError(
                f"OutboundMessage.subject must be one line of printable text, got {self.subject!r}"
            )
        try:
            self.body.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"OutboundMessage.body is not valid text: {error}") from None

    @property
    def domain(self) -> str:
        """The recipient's domain, lower-cased (what pacing is keyed by)."""
        return self.recipient.rpartition("@")[2].lower()


class Outcome(enum.Enum):
    """How one `Deliverer.deliver` call ended (see the module docstring's table)."""

    SENT = "sent"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    DEFERRED = "deferred"
    """Not sent, and known not sent: safe to enqueue again later."""
    DUPLICATE = "duplicate"
    """The ledger says it was sent, rejected or unknown already (or another attempt holds
    it right now): nothing was done."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What `Deliverer.deliver` did with one message.

    Attributes:
        key: the message's key.
        outcome: the `Outcome`.
        provider: the provider that sent, rejected or left it unknown (for a duplicate,
            the one the ledger recorded, if known); None when no provider answered.
        attempts: SMTP attempts made by this call (0 for a duplicate or a message that
            never reached a provider).
        detail: a human-readable explanation (the SMTP reply, why it was deferred).
    """

    key: str
    outcome: Outcome
    provider: str | None
    attempts: int
    detail: str


class _LostLease(Exception):
    """The ledger gave this attempt's key away (its lease ran out): stop without sending."""


class _Run:
    """The bookkeeping of one `deliver` call."""

    __slots__ = ("attempts", "call", "renewed")

    def __init__(self, call: Attempt, now: float) -> None:
        self.call = call
        self.attempts = 0
        self.renewed = now


class Deliverer:
    """Delivers messages through `providers` in order, at most once per key.

    Args:
        providers: tried in this order; the first is the primary.
        ledger: the idempotency ledger (share it between workers through Redis or Postgres).
        breakers: one breaker per provider, ``breakers.provider(name)`` (named
            ``provider:<name>``, so ``policies={"provider:*": ...}`` sets their policy).
            None: no breakers.
        pacer: paces sends per recipient domain (waits; a wait past its ``max_wait``
            defers the message). None: no pacing.
        retry: how transient errors are retried on each provider before failing over
            (default `RetryPolicy()`: 3 attempts, full jitter).
        budget: the retry budget, shared by every provider's retries. None: one budget per
            provider from ``retry.budget`` (none at all if that is None).
        clock: what backoff waits and lease renewals run on (a `FakeClock` in tests).

    Thread-safe: worker threads share one Deliverer.
    """

    def __init__(
        self,
        providers: Sequence[SmtpProvider],
        *,
        ledger: Ledger,
        breakers: BreakerRegistry | None = None,
        pacer: Pacer | None = None,
        retry: RetryPolicy | None = None,
        budget: Budgets | None = None,
        clock: Clock | None = None,
    ) -> None:
        providers = tuple(providers)
        if not providers:
            raise ConfigError("Deliverer needs at least one provider, got none")
        names: set[str] = set()
        for provider in providers:
            if not isinstance(provider, SmtpProvider):
                raise ConfigError(f"Deliverer providers must be SmtpProviders, got {provider!r}")
            if provider.name in names:
                raise ConfigError(f"Deliverer provider names must differ: {provider.name!r} twice")
            names.add(provider.name)
        checks: tuple[tuple[str, object, type], ...] = (
            ("ledger", ledger, Ledger),
            ("breakers", breakers, BreakerRegistry),
            ("pacer", pacer, Pacer),
            ("retry", retry, RetryPolicy),
            ("budget", budget, Budgets),
        )
        for name, value, kind in checks:
            if value is not None and not isinstance(value, kind):
                raise ConfigError(f"Deliverer.{name} must be a {kind.__name__}, got {value!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigError(f"Deliverer.clock must be a Clock, got {clock!r}")
        self.providers = providers
        self.ledger = ledger
        self.breakers = breakers
        self.pacer = pacer
        self.retry = retry if retry is not None else RetryPolicy()
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._retriers = {
            provider.name: Retrier(
                self.retry,
                on=SmtpTransient,
                name=f"smtp:{provider.name}",
                budgets=budget,
                clock=self.clock,
            )
            for provider in providers
        }
        self._renew_every = self.ledger.policy.lease / 3
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(Outcome, 0)
        self._attempts = 0

    def __repr__(self) -> str:
        names = ", ".join(provider.name for provider in self.providers)
        return f"Deliverer([{names}], ledger={self.ledger.name!r})"

    # --- the public face ----------------------------------------------------------------

    def deliver(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver `message` at most once per key; never raises for an SMTP or ledger
        outcome (the result says what happened)."""
        if not isinstance(message, OutboundMessage):
            raise TypeError(f"deliver() takes an OutboundMessage, got {message!r}")
        try:
            with self.ledger.idempotent(message.key, payload={"to": message.recipient}) as call:
                if call.replayed:
                    result = _replayed(message, call.result)
                else:
                    result = self._deliver(message, call)
                    _record(call, result)
        except LedgerError as refused:
            result = _refused(message, refused)
        except StoreUnavailable as error:
            result = DeliveryResult(
                message.key, Outcome.DEFERRED, None, 0, f"ledger unavailable, not sent: {error}"
            )
        with self._lock:
            self._counts[result.outcome] += 1
            self._attempts += result.attempts
        return result

    def stats(self) -> dict[str, int]:
        """A snapshot of the counts so far: one per `Outcome` value, and ``attempts`` (SMTP
        attempts made)."""
        with self._lock:
            counts = {outcome.value: count for outcome, count in self._counts.items()}
            counts["attempts"] = self._attempts
        return counts

    def close(self) -> None:
        """Close the providers' sessions (the ledger, breakers and pacer are the caller's,
        who may share them, and are left open)."""
        for provider in self.providers:
            provider.close()

    # --- one message --------------------------------------------------------------------

    def _deliver(self, message: OutboundMessage, call: Attempt) -> DeliveryResult:
        key = message.key
        if self.pacer is not None:
            try:
                self.pacer.pace(message.domain)
            except RateLimited as refused:
                return DeliveryResult(key, Outcome.DEFERRED, None, 0, f"paced: {refused}")
        run = _Run(call, self.clock.monotonic())
        missed: list[str] = []
        for provider in self.providers:
            try:
                self._retriers[provider.name].call(self._attempt, provider, message, run)
            except BreakerOpen as refused:
                missed.append(f"{provider.name}: breaker {refused.reason}")
                continue
            except SmtpTransient as error:
                missed.append(str(error))
                continue
            except SmtpPermanent as error:
                outcome, detail = Outcome.REJECTED, str(error)
            except SmtpUnknown as error:
                outcome, detail = Outcome.UNKNOWN, str(error)
            except _LostLease as lost:
                return DeliveryResult(key, Outcome.DEFERRED, None, run.attempts, str(lost))
            else:
                outcome, detail = Outcome.SENT, "sent"
            return DeliveryResult(key, outcome, provider.name, run.attempts, detail)
        detail = "no provider took it: " + "; ".join(missed)
        return DeliveryResult(key, Outcome.DEFERRED, None, run.attempts, detail)

    def _attempt(self, provider: SmtpProvider, message: OutboundMessage, run: _Run) -> None:
        """One SMTP attempt through the provider's breaker (raises the classified error)."""
        self._keep_lease(run)
        if self.breakers is None:
            run.attempts += 1
            error = _send(provider, message)
        else:
            with self.breakers.provider(provider.name).guard() as guarded:
                run.attempts += 1
                error = _send(provider, message)
                if isinstance(error, SmtpTransient | SmtpUnknown):
                    guarded.outcome(CallOutcome.FAILURE)
                # a permanent rejection (or a 2xx) is the provider working: a success
        if error is not None:
            raise error

    def _keep_lease(self, run: _Run) -> None:
        """Renew the ledger lease when a third of it has gone (long backoff or pacing)."""
        now = self.clock.monotonic()
        if not run.call.guarded or now - run.renewed < self._renew_every:
            return
        try:
            held = run.call.renew()
        except StoreUnavailable:
            return  # the lease still runs; try again at the next attempt
        if not held:
            raise _LostLease(
                "the ledger lease ran out before this attempt; not sent (the ledger decides "
                "what happens to it next)"
            )
        run.renewed = now


def _send(provider: SmtpProvider, message: OutboundMessage) -> SmtpError | None:
    """Send, returning the classified error instead of raising it; anything unexpected is
    unknown (it may have happened after the body went out)."""
    try:
        provider.send(message)
    except SmtpError as error:
        return error
    except Exception as error:
        return SmtpUnknown(
            f"{provider.name}: unexpected {type(error).__name__}: {error}",
            provider=provider.name,
            phase="unknown",
        )
    return None


def _record(call: Attempt, result: DeliveryResult) -> None:
    """Tell the ledger how the attempt ended (written when the `with` block exits)."""
    outcome = result.outcome
    if outcome is Outcome.SENT or outcome is Outcome.REJECTED:
        call.complete(
            {"outcome": outcome.value, "provider": result.provider, "attempts": result.attempts}
        )
    elif outcome is Outcome.UNKNOWN:
        call.unknown(result.detail)
    else:
        call.fail(result.detail)


def _replayed(message: OutboundMessage, recorded: Any) -> DeliveryResult:
    if isinstance(recorded, dict):
        provider = recorded.get("provider")
        was = f"already {recorded.get('outcome', 'completed')}"
        if provider:
            was += f" via {provider}"
        return DeliveryResult(
            message.key,
            Outcome.DUPLICATE,
            provider if isinstance(provider, str) else None,
            0,
            was,
        )
    return DeliveryResult(
        message.key, Outcome.DUPLICATE, None, 0, "already completed (resolved by an operator)"
    )


def _refused(message: OutboundMessage, refused: LedgerError) -> DeliveryResult:
    if isinstance(refused, OutcomeUnknown):
        detail = "an earlier attempt's outcome is unknown: listed for an operator, not resent"
    elif isinstance(refused, AlreadyInProgress):
        detail = f"another attempt is sending it (lease ends in {refused.retry_after:.1f}s)"
    elif isinstance(refused, PayloadMismatch):
        detail = "the key was used before for a different recipient: not sent"
    else:
        detail = f"already completed ({type(refused).__name__})"
    return DeliveryResult(message.key, Outcome.DUPLICATE, None, 0, detail)
