"""`idempotent(key=...)`: the ledger as a decorator (sync or async) and a context manager.

As a decorator, each call's key comes from the arguments and the call's payload is its
arguments (or what `payload` picks out of them); a replay returns the recorded result
without calling the function. As a context manager, the block cannot be skipped, so it
checks ``call.replayed`` itself::

    with ledger.idempotent(f"send:{message.id}", payload=message.fields) as call:
        if not call.replayed:
            call.complete(provider.send(message))
    return call.result
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard.jobs._ledger import Ledger, fingerprint
from sendguard.jobs._ledger_core import Decision, EntryState, LedgerEntry

__all__ = ["Attempt", "IdempotentCall", "default_ledger", "idempotent"]

P = ParamSpec("P")
R = TypeVar("R")
_Begun = tuple[Decision, LedgerEntry] | StoreUnavailable


class Attempt:
    """One call under the ledger: what `begin` decided, and how the body ends.

    Attributes:
        key: the ledger key.
        replayed: True when the key had completed before: the body must not act again;
            `result` is the recorded result.
        guarded: False when the store was down and ``on_store_down="run"`` let it run.
        entry: the ledger's entry as `begin` saw it (None when the store was down).
    """

    __slots__ = (
        "_detail",
        "_state",
        "entry",
        "fingerprint",
        "guarded",
        "key",
        "ledger",
        "replayed",
        "result",
        "token",
    )

    def __init__(self, ledger: Ledger, key: str, fingerprint: str) -> None:
        self.ledger = ledger
        self.key = key
        self.fingerprint = fingerprint
        self.token = ledger.new_token()
        self.replayed = False
        self.guarded = True
        self.result: Any = None
        self.entry: LedgerEntry | None = None
        self._state: EntryState | None = None
        self._detail = ""

    def __repr__(self) -> str:
        return f"Attempt({self.key!r}, replayed={self.replayed})"

    # --- what the body says --------------------------------------------------------------

    def complete(self, result: Any = None) -> None:
        """Record `result` as the call's result when the block ends."""
        if self.replayed:
            raise RuntimeError(f"key {self.key!r} was completed before: do not act again")
        self.result, self._state = result, EntryState.COMPLETED

    def unknown(self, detail: str) -> None:
        """The effect may or may not have happened (say, the link dropped after SMTP DATA)."""
        self._state, self._detail = EntryState.UNKNOWN, detail

    def fail(self, detail: str) -> None:
        """The effect surely did not happen: the next call with this key runs again."""
        self._state, self._detail = EntryState.FAILED, detail

    def renew(self) -> bool:
        """Restart the lease (a long body calls this before it runs out). False when this
        attempt no longer holds the key (its lease ran out and the key was taken over)."""
        if not self.guarded or self.replayed:
            return False
        held, _ = self.ledger._via(
            lambda s: s.renew(self.ledger.name, self.key, self.token, self.ledger.policy.lease)
        )
        return bool(held)

    # --- begin and finish (sync and async share everything but the store call) ---------

    def _try_begin(self) -> _Begun:
        try:
            decided: tuple[Decision, LedgerEntry] = self.ledger._via(self._begin_op())
        except StoreUnavailable as exc:
            return exc
        return decided

    async def _atry_begin(self) -> _Begun:
        try:
            decided: tuple[Decision, LedgerEntry] = await self.ledger._avia(self._begin_op())
        except StoreUnavailable as exc:
            return exc
        return decided

    def _begin_op(self) -> Callable[[Any], tuple[Decision, LedgerEntry]]:
        return self.ledger.begin_op(self.key, self.fingerprint, self.token)

    def _begun(self, begun: _Begun) -> Attempt:
        if isinstance(begun, StoreUnavailable):
            self.guarded = not self.ledger.store_down(begun, self.key)
            return self
        decision, self.entry = begun
        if not self.ledger.decide(decision, self.entry, self.key):
            self.replayed = True
            self.result = self.ledger.replayed_result(self.key, self.entry)
        return self

    def _finish_op(
        self, error: BaseException | None
    ) -> tuple[EntryState, str, Callable[[Any], Any]]:
        # What the body said wins (a result in hand means the effect happened, whatever
        # raised afterwards); else a clean exit completes and an exception is classified.
        state = self._state
        if state is None:
            state = EntryState.COMPLETED if error is None else self.ledger.outcome(error)
        detail = self._detail or ("" if error is None else f"{type(error).__name__}: {error}")
        result, digest = (None, "")
        if state is EntryState.COMPLETED:
            result, digest = self.ledger.encode_result(self.result)
        op = self.ledger.finish_op(self.key, self.token, state, result, digest, detail)
        return state, detail, op

    def _finished(
        self, state: EntryState, detail: str, outcome: tuple[bool, Any] | StoreUnavailable
    ) -> None:
        if isinstance(outcome, StoreUnavailable):
            self.ledger.not_recorded(self.key, outcome, state)
        else:
            self.ledger.finished(self.key, state, outcome[0], detail)

    def _skip_finish(self) -> bool:
        return self.replayed or not self.guarded

    def __enter__(self) -> Attempt:
        return self._begun(self._try_begin())

    def __exit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._skip_finish():
            return
        state, detail, op = self._finish_op(error)
        try:
            outcome: tuple[bool, Any] | StoreUnavailable = self.ledger._via(op)
        except StoreUnavailable as exc:
            outcome = exc
        self._finished(state, detail, outcome)

    async def __aenter__(self) -> Attempt:
        return self._begun(await self._atry_begin())

    async def __aexit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._skip_finish():
            return
        state, detail, op = self._finish_op(error)
        try:
            outcome: tuple[bool, Any] | StoreUnavailable = await self.ledger._avia(op)
        except StoreUnavailable as exc:
            outcome = exc
        self._finished(state, detail, outcome)


class IdempotentCall:
    """What `Ledger.idempotent` and `idempotent` return: a decorator or a context manager.

    As a context manager, make a fresh one for each block (``with ledger.idempotent(...)``).
    """

    def __init__(self, ledger: Ledger, key: str | Callable[..., str], payload: object) -> None:
        self.ledger = ledger
        self.key = key
        self.payload = payload
        self._current: Attempt | None = None

    # --- context manager: the key is the key, the payload a value -----------------------

    def _new(self) -> Attempt:
        if not isinstance(self.key, str):
            raise ConfigError("as a context manager, idempotent() takes the key itself (a str)")
        return Attempt(self.ledger, self.key, fingerprint(self.payload))

    def __enter__(self) -> Attempt:
        self._current = self._new()
        return self._current.__enter__()

    def __exit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._current is not None
        self._current.__exit__(et, error, tb)

    async def __aenter__(self) -> Attempt:
        self._current = self._new()
        return await self._current.__aenter__()

    async def __aexit__(
        self, et: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._current is not None
        await self._current.__aexit__(et, error, tb)

    # --- decorator: key and payload from the arguments -----------------------------------

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate `fn`: each call runs at most once per key."""
        signature = inspect.signature(fn)
        key, payload = self.key, self.payload
        if payload is not None and not callable(payload):
            raise ConfigError(
                "as a decorator, idempotent(payload=...) takes a function of the "
                "call's arguments (or None: all of them)"
            )

        def attempt(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Attempt:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            name = key(*args, **kwargs) if callable(key) else key.format(**bound.arguments)
            value = payload(*args, **kwargs) if callable(payload) else dict(bound.arguments)
            try:
                digest = fingerprint(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"idempotent {fn.__qualname__}: the arguments are not JSON-native ({exc}): "
                    "pass payload=lambda ...: {...} to pick what identifies a call"
                ) from None
            return Attempt(self.ledger, name, digest)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_once(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with attempt(args, kwargs) as call:
                    if not call.replayed:
                        call.complete(await fn(*args, **kwargs))
                return call.result

            return async_once

        @functools.wraps(fn)
        def once(*args: P.args, **kwargs: P.kwargs) -> Any:
            with attempt(args, kwargs) as call:
                if not call.replayed:
                    call.complete(fn(*args, **kwargs))
            return call.result

        return once


_default: list[Ledger] = []
_default_lock = threading.Lock()


def default_ledger() -> Ledger:
    """The process-wide ledger `idempotent` uses when given none (in memory: one process)."""
    if not _default:
        with _default_lock:
            if not _default:
                _default.append(Ledger())
    return _default[0]


def idempotent(
    key: str | Callable[..., str], *, ledger: Ledger | None = None, payload: object = None
) -> IdempotentCall:
    """`Ledger.idempotent` on `ledger` (default: `default_ledger()`, this process only)."""
    return IdempotentCall(ledger or default_ledger(), key, payload)
