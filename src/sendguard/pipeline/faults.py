"""Fault plans for the SMTP sinks: which fault each incoming message gets, from a seed.

Pure and free of I/O (no aiosmtpd import), so configuration can name faults without
starting a server. `sendguard.pipeline.sinks` applies them (its docstring has the table
of what each fault does on the wire).
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sendguard import ConfigError

__all__ = ["Fault", "FaultPlan"]


class Fault(enum.Enum):
    """What a sink does with one message (see the module docstring's table)."""

    NONE = "none"
    HANG = "hang"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    DROP_AFTER_DATA = "drop_after_data"
    REFUSE = "refuse"


@dataclass
class FaultPlan:
    """Which fault each incoming message gets: deterministic from a seed.

    Args:
        rates: the share of messages that get each fault (each in [0, 1], summing to at
            most 1; the rest get `Fault.NONE`).
        seed: the draw for a recipient's n-th attempt at a sink depends only on the seed,
            the recipient and n, so runs repeat exactly and a retry can draw differently.
        down: while True every connection is refused (settable at run time).
    """

    rates: Mapping[Fault, float] = field(default_factory=dict)
    seed: int = 0
    down: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rates, Mapping):
            raise ConfigError(
                f"FaultPlan.rates must be a mapping of Fault to float, got {self.rates!r}"
            )
        total = 0.0
        for fault, rate in self.rates.items():
            if not isinstance(fault, Fault) or fault is Fault.NONE:
                raise ConfigError(
                    f"FaultPlan.rates keys must be faults other than Fault.NONE (the rest), "
                    f"got {fault!r}"
                )
            number = isinstance(rate, int | float) and not isinstance(rate, bool)
            if not number or not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
                raise ConfigError(f"FaultPlan.rates[{fault}] must be in [0, 1], got {rate!r}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ConfigError(f"FaultPlan.rates must sum to at most 1, got {total!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"FaultPlan.seed must be an int, got {self.seed!r}")
        self.rates = MappingProxyType({f: float(self.rates[f]) for f in Fault if f in self.rates})

    def fault_for(self, recipient: str, attempt: int) -> Fault:
        """The fault for `recipient`'s `attempt`-th message at a sink (0 first). Pure."""
        if self.down:
            return Fault.REFUSE
        text = f"{self.seed}\x00{recipient}\x00{attempt}".encode("utf-8", "surrogatepass")
        draw = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64
        bound = 0.0
        for fault, rate in self.rates.items():
            bound += rate
            if draw < bound:
                return fault
        return Fault.NONE
