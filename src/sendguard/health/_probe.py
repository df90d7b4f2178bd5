"""The probe protocol, a base for probes, probes made from functions, and running one safely.

A probe is anything with a `name`, a `critical` flag, a `timeout` in seconds and a
`check()` that returns a `ProbeResult` (or a coroutine function that does). `run_probe`
calls it, turns an exception into a failing result (a probe never raises into its
caller), bounds a coroutine by the timeout, and stamps the duration.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.errors import ConfigError
from sendguard.health._result import ProbeResult, Status

__all__ = [
    "BaseProbe",
    "FunctionProbe",
    "Probe",
    "describe_error",
    "probe",
    "run_probe",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@/+\-]{0,119}")
MAX_TIMEOUT = 300.0

CheckOutcome = ProbeResult | bool | None
"""What a function probe may return: a result, True/None for pass, False for fail."""


@runtime_checkable
class Probe(Protocol):
    """A health probe. `check` may be a plain method or a coroutine function.

    `component_type` (``datastore``, ``component`` or ``system``, the draft's
    ``componentType``) is read when present.
    """

    @property
    def name(self) -> str:
        """The component's name; unique in a registry; no ``:`` (the draft's key separator)."""
        ...

    @property
    def critical(self) -> bool:
        """Whether readiness fails when this check fails."""
        ...

    @property
    def timeout(self) -> float:
        """Seconds after which the check is reported failed."""
        ...

    def check(self) -> ProbeResult | Awaitable[ProbeResult]:
        """Look at the dependency once and report."""
        ...


def validate_probe_settings(owner: str, name: object, critical: object, timeout: object) -> None:
    """Raise `ConfigError` naming the field when a probe's name, flag or timeout is bad."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"{owner}.name must be 1-120 characters of letters, digits and _.@/+- "
            f"(no ':' or spaces), got {name!r}"
        )
    if not isinstance(critical, bool):
        raise ConfigError(f"{owner}.critical must be True or False, got {critical!r}")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT)
    ):
        raise ConfigError(
            f"{owner}.timeout must be in (0, {MAX_TIMEOUT:g}] seconds, got {timeout!r}"
        )


class BaseProbe:
    """Holds and validates the settings every probe has; subclasses write `check`."""

    component_type = "component"

    def __init__(self, name: str, *, critical: bool, timeout: float) -> None:
        validate_probe_settings(type(self).__name__, name, critical, timeout)
        self.name = name
        self.critical = critical
        self.timeout = float(timeout)

    def check(self) -> ProbeResult:  # pragma: no cover - every probe overrides it
        """Look at the dependency once and report."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, critical={self.critical!r})"


class FunctionProbe(BaseProbe):
    """A probe around a function (sync or async) returning a `ProbeResult`, a bool or None.

    True or None passes; False fails; an exception fails with its message.
    """

    def __init__(
        self,
        function: Callable[[], CheckOutcome] | Callable[[], Awaitable[CheckOutcome]],
        name: str,
        *,
        critical: bool = True,
        timeout: float = 1.0,
        component_type: str = "component",
    ) -> None:
        super().__init__(name, critical=critical, timeout=timeout)
        self.function = function
        self.component_type = component_type

    def check(self) -> Any:
        """Call the function; a coroutine function's result is awaited by `run_probe`."""
        outcome = self.function()
        if inspect.isawaitable(outcome):
            return _coerce_later(outcome)
        return _coerce(outcome)


async def _coerce_later(outcome: Awaitable[CheckOutcome]) -> ProbeResult:
    return _coerce(await outcome)


def _coerce(outcome: object) -> ProbeResult:
    if isinstance(outcome, ProbeResult):
        return outcome
    if outcome is None or outcome is True:
        return ProbeResult.passing()
    if outcome is False:
        return ProbeResult.failing("the check returned False")
    return ProbeResult.failing(f"the check returned {type(outcome).__name__}, not a ProbeResult")


def probe(
    name: str, *, critical: bool = True, timeout: float = 1.0, component_type: str = "component"
) -> Callable[[Callable[[], Any]], FunctionProbe]:
    """Make a probe from a function::

    @probe("smtp-relay", timeout=2.0)
    def smtp_relay() -> bool:
        return smtplib.SMTP("relay.internal", timeout=2).noop()[0] == 250
    """

    def wrap(function: Callable[[], Any]) -> FunctionProbe:
        return FunctionProbe(
            function, name, critical=critical, timeout=timeout, component_type=component_type
        )

    return wrap


def describe_error(error: BaseException, limit: int = 300) -> str:
    """``TypeName: message``, on one line, at most `limit` characters."""
    text = " ".join(str(error).split())
    described = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return described if len(described) <= limit else described[: limit - 3] + "..."


async def _bounded(awaitable: Awaitable[Any], seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


def run_probe(target: Probe, clock: Clock = SYSTEM_CLOCK) -> ProbeResult:
    """Run one check and return its stamped result; never raises an `Exception`.

    A coroutine is run on a fresh event loop and cancelled at the probe's timeout (call
    this from a thread without a running loop: the registry runs it on its own threads).
    """
    start = clock.monotonic()
    try:
        outcome: object = target.check()
        if inspect.isawaitable(outcome):
            try:
                outcome = asyncio.run(_bounded(outcome, target.timeout))
            except TimeoutError:
                outcome = ProbeResult.failing(f"timed out after {target.timeout:g}s")
        result = _coerce(outcome)
    except Exception as error:
        result = ProbeResult(
            Status.FAIL, describe_error(error), details={"error": type(error).__name__}
        )
    end = clock.monotonic()
    return result.stamped(duration=end - start, time=clock.wall(), checked_at=end)
