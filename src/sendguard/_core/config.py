"""Process-wide switches (today: testing mode) read when guards are built."""

from __future__ import annotations

import random

__all__ = ["is_testing", "make_rng", "set_testing_flag"]

_state = {"testing": False}


def set_testing_flag(on: bool) -> bool:
    """Set testing mode; return the previous setting."""
    previous = _state["testing"]
    _state["testing"] = bool(on)
    return previous


def is_testing() -> bool:
    """True while `sendguard.testing.set_testing` is in force."""
    return _state["testing"]


def make_rng(rng: random.Random | None = None) -> random.Random:
    """`rng` if given; a seeded generator in testing mode; else a fresh random one."""
    if rng is not None:
        return rng
    return random.Random(0) if is_testing() else random.Random()
