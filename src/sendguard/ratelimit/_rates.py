"""Rates: `limits` rate strings ("10/second;120/minute") as validated values."""

from __future__ import annotations

from dataclasses import dataclass

from sendguard._core.errors import ConfigError

__all__ = ["Rate", "parse_rates"]


@dataclass(frozen=True, slots=True)
class Rate:
    """`amount` requests (or cost units) per `seconds`."""

    amount: int
    seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool) or self.amount < 1:
            raise ConfigError(f"a rate allows a whole number >= 1 of requests, got {self.amount!r}")
        if not isinstance(self.seconds, int | float) or not 0 < self.seconds <= 366 * 86400:
            raise ConfigError(f"a rate's window is (0, 1 year] seconds, got {self.seconds!r}")

    @property
    def label(self) -> str:
        """A short readable form, ``120/60s``."""
        window = int(self.seconds) if float(self.seconds).is_integer() else self.seconds
        return f"{self.amount}/{window}s"


def parse_rates(text: str | Rate | tuple[Rate, ...] | list[Rate]) -> tuple[Rate, ...]:
    """Rates from a `limits` rate string such as ``"10/second;120/minute"``.

    Accepts everything `limits.parse_many` does (``"5 per 10 seconds"``, ``"100/day"``,
    separated by ``;``, ``,`` or ``|``); raises `ConfigError` naming the bad text.
    """
    if isinstance(text, Rate):
        return (text,)
    if isinstance(text, tuple | list):
        if not text or not all(isinstance(r, Rate) for r in text):
            raise ConfigError(f"expected a rate string or Rate values, got {text!r}")
        return _one_per_window(text, tuple(text))
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"expected a rate string such as '10/second;120/minute', got {text!r}")
    from limits import parse_many

    try:
        items = parse_many(text)
    except ValueError as bad:
        raise ConfigError(f"cannot parse rate {text!r}: {bad}") from None
    rates = tuple(Rate(item.amount, float(item.get_expiry())) for item in items)
    return _one_per_window(text, rates)


def _one_per_window(given: object, rates: tuple[Rate, ...]) -> tuple[Rate, ...]:
    """`rates`, if no two share a window (the larger would never apply, and a window
    names its limit in the RateLimit headers)."""
    seen: dict[float, Rate] = {}
    for rate in rates:
        other = seen.setdefault(rate.seconds, rate)
        if other is not rate:
            raise ConfigError(
                f"rate {given!r} sets two limits on one window ({other.label} and "
                f"{rate.label}): keep the one that should apply"
            )
    return rates
