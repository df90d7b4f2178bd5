"""Classifying outcomes: exceptions, HTTP statuses and SMTP replies; ignored calls."""

import asyncio
import contextlib
from dataclasses import dataclass

from sendguard.breakers import Breaker, BreakerRegistry, Outcome, Window


def http_outcome(status: object) -> Outcome:
    """5xx: the service is failing. 429: it is alive but busy (neither). Else: it answered."""
    assert isinstance(status, int)
    if status >= 500:
        return Outcome.FAILURE
    if status == 429:
        return Outcome.IGNORED
    return Outcome.SUCCESS


@dataclass(frozen=True)
class SmtpReply:
    code: int
    text: str


def smtp_outcome(reply: object) -> Outcome:
    """4xx: a transient failure of the server. 5xx is a permanent answer about the message
    (no such mailbox): the server works, so that is a success for the breaker."""
    assert isinstance(reply, SmtpReply)
    return Outcome.FAILURE if 400 <= reply.code < 500 else Outcome.SUCCESS


class RecipientRejected(Exception):
    """Raised by our own client for a bad address: not the provider's fault."""


registry = BreakerRegistry(
    Breaker(min_calls=4, window=Window.count(4)),
    policies={
        "provider:http-api": Breaker(
            min_calls=4, window=Window.count(4), classify_result=http_outcome
        ),
        "provider:smtp": Breaker.consecutive(
            3,
            classify_result=smtp_outcome,
            failure_on=(ConnectionError, TimeoutError),  # only these exceptions are failures
            ignore_on=(RecipientRejected,),  # neither a failure nor a success
        ),
    },
)

# HTTP: the 429s are ignored, so the window holds 200, 503, 200, 502: 2 of 4 failed.
api = registry.provider("http-api")
for status in (200, 503, 429, 429, 429, 200, 502):
    api.call(lambda s=status: s)
print("http-api:", api.state.value, api.stats.as_dict())

# SMTP: two 451 replies, an ignored exception (does not reset the run of failures),
# then a third 451: three failures in a row.
smtp = registry.provider("smtp")
replies = [SmtpReply(451, "try later"), SmtpReply(451, "try later"), None, SmtpReply(451, "")]
for reply in replies:
    try:
        with smtp.guard() as call:
            if reply is None:
                raise RecipientRejected("bad address")
            call.result(reply)
    except RecipientRejected:
        pass
print("smtp:", smtp.state.value, smtp.stats.as_dict())


# A KeyError is not in failure_on: it counts as a success (the provider answered).
def parse_reply() -> str:
    fields: dict[str, str] = {}
    return fields["message-id"]  # a bug on our side: KeyError


smtp.reset()
for _ in range(3):
    with contextlib.suppress(KeyError):
        smtp.call(parse_reply)
print("smtp after three KeyErrors:", smtp.state.value)


# A cancelled call is ignored: cancellation says nothing about the dependency.
async def cancelled_calls() -> None:
    breaker = registry.provider("slow-api")

    @breaker
    async def fetch() -> str:
        await asyncio.sleep(10)
        return "late"

    for _ in range(5):
        task = asyncio.create_task(fetch())
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    print("slow-api after 5 cancellations:", breaker.state.value, breaker.stats.as_dict())


asyncio.run(cancelled_calls())
