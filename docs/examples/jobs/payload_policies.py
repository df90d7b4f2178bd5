"""Budgets per queue and per function, batch budgets, the allow-list, and a dry run."""

import datetime as dt
import logging
import sys
import uuid

from sendguard.jobs import KIB, MIB, PayloadGuard, PayloadPolicy, PayloadRejected

logging.basicConfig(format="log: %(message)s", level=logging.WARNING, stream=sys.stdout)

guard = PayloadGuard(
    PayloadPolicy(),  # 64 KiB a job, a warning over 16 KiB, 8 MiB a batch
    queues={"webhooks": PayloadPolicy(max_bytes=8 * KIB, warn_bytes=None)},
    functions={"app.reports.*": PayloadPolicy(max_bytes=1 * MIB, batch_max_bytes=16 * MIB)},
)
for function, queue in (
    ("app.jobs.send", "five_minutes"),
    ("app.jobs.hook", "webhooks"),
    ("app.reports.weekly", "five_minutes"),
):
    print(f"{function} on {queue}: {guard.policy_for(function, queue).max_bytes} bytes")

# A payload past its warning threshold is accepted, logged (once a minute) and counted.
guard.check("app.jobs.send", (list(range(5000)),), queue="five_minutes")

# The allow-list: UUID, datetime, date, Decimal and Enum travel as strings.
when = dt.datetime(2025, 1, 30, 9, 22, tzinfo=dt.UTC)
print("allow-listed:", guard.check("app.jobs.send", (uuid.UUID(int=1), when)).size, "bytes")

# A fan-out inside one batch shares the batch budget.
try:
    with guard.batch(max_bytes=64 * KIB):
        for n in range(300):
            guard.check("app.jobs.send", ("x" * 1000, n), queue="five_minutes")
except PayloadRejected as refused:
    print(f"refused: {refused}")

# Rolling out on an existing codebase: report the fat jobs without refusing them yet.
dry = PayloadGuard(PayloadPolicy(enforce=False))
check = dry.check("app.jobs.legacy", ({"body": "x" * 100 * KIB},), queue="five_minutes")
print(f"dry run let it through: {check.size} bytes (a lower bound)")
