"""Durations people type (``90s``, ``30m``, ``1h30m``) and durations people read."""

from __future__ import annotations

import re

from sendguard._core.errors import ConfigError

__all__ = ["format_duration", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = r"(\d+(?:\.\d+)?)([smhd])"


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``1d``, ``1h30m`` or plain ``45``; must be > 0.

    Raises `ConfigError` naming the bad text.
    """
    spec = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", spec):
        seconds = float(spec)
    elif spec and re.fullmatch(f"(?:{_PART})+", spec):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in re.findall(_PART, spec))
    if seconds is None or not seconds > 0:
        raise ConfigError(
            f"bad duration {text!r}: use 90s, 30m, 2h, 1d (or 1h30m), or plain seconds"
        )
    return seconds


def format_duration(seconds: float) -> str:
    """``0.25s``, ``4.2s``, ``42s``, ``29m 59s``, ``2h 05m``, ``3d 04h``."""
    if seconds < 1:
        return f"{max(0.0, seconds):.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    for size, unit, part, part_unit in ((86400, "d", 3600, "h"), (3600, "h", 60, "m")):
        if whole >= size:
            return f"{whole // size}{unit} {whole % size // part:02d}{part_unit}"
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"
