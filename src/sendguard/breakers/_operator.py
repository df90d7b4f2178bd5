"""Operator controls of a breaker: forced states with a reason and an expiry, and reset.

They go to the shared store or fail: an operator told "forced open" must be able to
trust that every worker sees it, so there is no quiet local fallback here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sendguard.breakers._link import StoreLink
from sendguard.breakers._policy import State
from sendguard.breakers._store import BreakerStore, SharedView

__all__ = ["OperatorControls"]


class OperatorControls:
    """Mixed into `CircuitBreaker`: `force_open`, `force_closed`, `clear_override`, `reset`."""

    name: str
    _link: StoreLink

    if TYPE_CHECKING:  # provided by CircuitBreaker

        def _adopt_result(self, result: object, force: bool) -> None: ...

    def _operate(self, op: Callable[[BreakerStore], SharedView]) -> None:
        link = self._link
        view = op(link.store)  # raises StoreUnavailable when the store is away
        switched = link.source is not link.store
        link.source = link.store
        self._adopt_result(view, switched)

    def force_open(self, reason: str, *, for_: float | None = None) -> None:
        """Refuse every call, in every process sharing the store, for `for_` seconds.

        Raises `StoreUnavailable` if the shared store cannot be reached.
        """
        self._operate(lambda s: s.set_override(self.name, State.FORCED_OPEN, reason, for_))

    def force_closed(self, reason: str, *, for_: float | None = None) -> None:
        """Admit every call and record nothing, everywhere, for `for_` seconds."""
        self._operate(lambda s: s.set_override(self.name, State.FORCED_CLOSED, reason, for_))

    def clear_override(self) -> None:
        """Remove a forced state; the breaker carries on from its machine state."""
        self._operate(lambda s: s.set_override(self.name, None, "", None))

    def reset(self) -> None:
        """Clear any override and close the breaker with an empty window, everywhere."""
        self._operate(lambda s: s.reset(self.name))
