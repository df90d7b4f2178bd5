"""`StoreLink`: a breaker's path to its shared store, with a local fallback.

Operations go to the shared store while its gate is open. When the store fails, the
link switches to the process's local store, seeded with the breaker's last view, and the
gate backs off. When the store answers again, a breaker that opened while it was away
and is still open publishes that trip, so other processes learn of it. Every result says
whether the link switched stores, because a view from the other store must be adopted
whatever its generation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sendguard._core.errors import StoreUnavailable
from sendguard._core.store import StoreGate
from sendguard.breakers._store import (
    AsyncBreakerStore,
    BreakerStore,
    MemoryBreakerStore,
    SharedView,
)

__all__ = ["StoreLink"]

T = TypeVar("T")
PendingTrip = Callable[[SharedView], "tuple[int, float, int] | None"]
"""Given the store's view on its return: (generation, seconds, reopenings) to publish a
trip that happened while it was away, or None."""


def view_of(result: object) -> SharedView:
    """The view in an operation's result (some return ``(granted, view)``)."""
    view = result[1] if isinstance(result, tuple) else result
    assert isinstance(view, SharedView)
    return view


class StoreLink:
    """Routes a breaker's store operations to the shared store or the local fallback."""

    __slots__ = ("_pending_trip", "_snapshot", "gate", "local", "name", "source", "store")

    def __init__(
        self,
        name: str,
        store: BreakerStore,
        local: MemoryBreakerStore,
        gate: StoreGate,
        *,
        snapshot: Callable[[], SharedView],
        pending_trip: PendingTrip,
    ) -> None:
        self.name = name
        self.store = store
        self.local = local
        self.gate = gate
        self.source: object = store
        self._snapshot = snapshot
        self._pending_trip = pending_trip

    @property
    def shared(self) -> bool:
        """True while operations go to a shared store (not the local fallback)."""
        return self.source is self.store and self.store is not self.local

    def _pick(self) -> BreakerStore:
        if self.store is not self.local and self.gate.available():
            return self.store
        return self.local

    def _switched(self, used: BreakerStore) -> bool:
        if used is self.source:
            return False
        previous, self.source = self.source, used
        if used is self.local and previous is self.store:
            self.local.seed(self.name, self._snapshot())
        return True

    def via(self, op: Callable[[BreakerStore], T]) -> tuple[T, bool]:
        """Run `op` on the right store; return its result and whether the store changed."""
        store = self._pick()
        if store is not self.local:
            try:
                result = op(store)
                if self.source is self.local:
                    result = self._reconcile(store, result)
            except StoreUnavailable as exc:
                self.gate.failed(exc)
                store = self.local
                self._switched(store)
                result = op(store)
            else:
                self.gate.succeeded()
        else:
            result = op(store)
        return result, self._switched(store)

    async def avia(self, op: Callable[[AsyncBreakerStore], Awaitable[T]]) -> tuple[T, bool]:
        """`via` for coroutines."""
        store = self._pick()
        if store is not self.local:
            try:
                result = await op(store)  # type: ignore[arg-type]
                if self.source is self.local:
                    result = await self._areconcile(store, result)  # type: ignore[arg-type]
            except StoreUnavailable as exc:
                self.gate.failed(exc)
                store = self.local
                self._switched(store)
                result = await op(self.local)
            else:
                self.gate.succeeded()
        else:
            result = await op(self.local)
        return result, self._switched(store)

    def _reconcile(self, store: BreakerStore, result: T) -> T:
        """The store is back: a breaker that opened while it was away opens there too."""
        carry = self._pending_trip(view_of(result))
        if carry is None:
            return result
        view = store.trip(self.name, carry[0], carry[1], carry[2], "opened_while_store_down")
        return (False, view) if isinstance(result, tuple) else view  # type: ignore[return-value]

    async def _areconcile(self, store: AsyncBreakerStore, result: T) -> T:
        carry = self._pending_trip(view_of(result))
        if carry is None:
            return result
        view = await store.atrip(self.name, carry[0], carry[1], carry[2], "opened_while_store_down")
        return (False, view) if isinstance(result, tuple) else view  # type: ignore[return-value]
