"""Process bodies for the cross-process breaker tests (spawned; must be importable)."""

from __future__ import annotations

import time
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from sendguard.breakers import Breaker, BreakerOpen, BreakerRegistry


def watch_for_rejection(
    url: str, name: str, sync_interval: float, ready: Barrier, stop: Event, out: Any
) -> None:
    """Call the breaker in a loop; report the wall time of the first refusal and its reason."""
    registry = BreakerRegistry(Breaker.consecutive(1000), store=url, sync_interval=sync_interval)
    breaker = registry.get(name)
    breaker.call(lambda: None)  # connect and read the shared state before the clock starts
    ready.wait()
    deadline = time.monotonic() + 20
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            breaker.call(lambda: None)
        except BreakerOpen as refused:
            out.put((time.time(), refused.reason))
            return
        time.sleep(0.002)  # a polling client, not synchronisation: the deadline bounds it
    out.put((None, "never refused"))


def race_for_probe(url: str, name: str, ready: Barrier, out: Any) -> None:
    """Once the breaker's open time ends, try to become a half-open probe (and hold it)."""
    policy = Breaker.consecutive(1, open_for=0.3, half_open_calls=2, half_open_max_wait=30)
    registry = BreakerRegistry(policy, store=url, sync_interval=0.05)
    breaker = registry.get(name)
    ready.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            ticket = breaker.admit(time.monotonic())
        except BreakerOpen as refused:
            if refused.reason == "half_open":
                out.put("denied")
                return
            time.sleep(0.002)  # still open: poll until the open time ends
            continue
        out.put("probe" if ticket & 3 == 1 else f"ticket {ticket}")
        return
    out.put("timeout")
