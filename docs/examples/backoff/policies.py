"""Choosing a policy: jitter, base and cap, attempts, a deadline, a per-attempt timeout."""

import random

from sendguard import ConfigError
from sendguard.backoff import Jitter, RetryPolicy, backoff_delay

# The defaults: 3 attempts, full jitter from 0.5 s doubling to a 20 s cap, a retry
# budget per host, Retry-After trusted up to 30 s, no deadline.
print(RetryPolicy())

# What each jitter does to the waits before retries 1..6 (base 0.5 s, cap 8 s).
for jitter in Jitter:
    rng = random.Random(7)
    previous = 0.5
    waits = []
    for retry in range(1, 7):
        previous = backoff_delay(jitter, retry, previous, 0.5, 8.0, rng.random())
        waits.append(f"{previous:4.2f}")
    print(f"{jitter.value:>12}: {' '.join(waits)}")

# For a request path: give up after 10 s in all, and no attempt may take over 3 s.
interactive = RetryPolicy(attempts=5, base=0.2, cap=2.0, deadline=10.0, attempt_timeout=3.0)
print("interactive:", interactive.attempts, interactive.deadline, interactive.attempt_timeout)

# Policies are values: copy with changes (validated again), and bad values fail at once.
print("background:", interactive.copy(deadline=300.0, cap=60.0).deadline)
try:
    RetryPolicy(base=5, cap=1)
except ConfigError as error:
    print("refused:", error)
