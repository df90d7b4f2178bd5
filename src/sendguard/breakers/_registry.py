"""`BreakerRegistry`: breakers by name, created lazily from shared config, bounded (LRU)."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sendguard._core.clock import SYSTEM_CLOCK, Clock
from sendguard._core.config import make_rng
from sendguard._core.errors import ConfigError
from sendguard._core.store import DEFAULT_STORE_TIMEOUT, REDIS_SCHEMES, StoreGate
from sendguard._core.telemetry import Hook, Telemetry, register_observable
from sendguard.breakers._breaker import CircuitBreaker
from sendguard.breakers._calls import Guarded
from sendguard.breakers._policy import Breaker, State
from sendguard.breakers._store import BreakerStore, MemoryBreakerStore, SharedView

if TYPE_CHECKING:
    from sendguard.breakers.pybreaker_interop import PybreakerBreaker

__all__ = ["BreakerInfo", "BreakerRegistry", "Scope", "open_store"]

Scope = Literal["global", "route", "tenant", "provider"]
F = TypeVar("F", bound=Callable[..., Any])
_OUTCOMES = ("success", "failure", "ignored", "slow", "rejected")


@dataclass(frozen=True, slots=True)
class BreakerInfo:
    """What an operator sees of one breaker (from the store, so it is every process's view)."""

    name: str
    state: State
    reason: str
    open_remaining: float
    override: State | None
    override_reason: str
    override_remaining: float | None
    generation: int

    @classmethod
    def from_view(cls, name: str, view: SharedView) -> BreakerInfo:
        """Build from a store's view."""
        return cls(
            name=name,
            state=view.override or view.state,
            reason=view.reason,
            open_remaining=view.open_remaining,
            override=view.override,
            override_reason=view.override_reason,
            override_remaining=view.override_remaining,
            generation=view.generation,
        )


def open_store(
    store: str | BreakerStore | None,
    clock: Clock = SYSTEM_CLOCK,
    *,
    timeout: float = DEFAULT_STORE_TIMEOUT,
) -> BreakerStore:
    """A breaker store from a URL (``memory://`` or ``redis://...``), an object, or None.

    `timeout` bounds each Redis command; the default suits a request path, a command-line
    tool talking to a remote Redis wants more.
    """
    if store is None or store == "memory://" or store == "memory":
        return MemoryBreakerStore(clock)
    if isinstance(store, str):
        if store.startswith(REDIS_SCHEMES):
            from sendguard.breakers.redis_store import RedisBreakerStore

            return RedisBreakerStore(store, timeout=timeout)
        raise ConfigError(f"unknown breaker store {store!r}: use memory:// or redis://host:port/db")
    return store


class BreakerRegistry:
    """Creates and keeps `CircuitBreaker`s by name, all sharing one store and config.

    Names are free text; the scope helpers build ``<scope>:<key>`` names
    (``registry.route("GET /v1/emails/{id}/analytics")``, ``registry.tenant("acct_42")``).
    A breaker's policy is the first of: `policies[name]`, `policies["<scope>:*"]`,
    `policy`. At most `max_breakers` are kept; the least recently used is dropped
    first (its shared state stays in the store and is picked up again if it returns).
    """

    def __init__(
        self,
        policy: Breaker | None = None,
        *,
        store: str | BreakerStore | None = None,
        policies: Mapping[str, Breaker] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        hooks: Sequence[Hook] | None = None,
        max_breakers: int = 10_000,
        sync_interval: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not isinstance(max_breakers, int) or max_breakers < 1:
            raise ConfigError(f"max_breakers must be a whole number >= 1, got {max_breakers!r}")
        if not 0 < sync_interval <= 60:
            raise ConfigError(f"sync_interval must be in (0, 60] seconds, got {sync_interval!r}")
        for key, value in (policies or {}).items():
            if not isinstance(value, Breaker):
                raise ConfigError(f"policies[{key!r}] must be a Breaker, got {value!r}")
        self.policy = policy or Breaker()
        self.policies = dict(policies or {})
        self.clock = clock
        self.telemetry = Telemetry(hooks)
        self.store = open_store(store, clock)
        self.max_breakers = max_breakers
        self.sync_interval = sync_interval
        self._rng = make_rng(rng)
        self._local = (
            self.store
            if isinstance(self.store, MemoryBreakerStore)
            else MemoryBreakerStore(clock, "local")
        )
        self._gate = StoreGate(
            self.store.label, "breaker", self.telemetry, clock=clock, rng=self._rng
        )
        self._lock = threading.Lock()
        self._breakers: OrderedDict[str, CircuitBreaker] = OrderedDict()
        self._adopted: dict[str, PybreakerBreaker] = {}
        self._pinned: set[str] = set()
        register_observable(
            "sendguard.breaker.calls",
            self,
            "Calls through sendguard breakers by outcome",
            "{call}",
            _read_calls,
        )
        register_observable(
            "sendguard.breaker.state",
            self,
            "1 for each breaker's current state",
            "1",
            _read_states,
            counter=False,
        )

    def policy_for(self, name: str) -> Breaker:
        """The policy a breaker named `name` gets."""
        found = self.policies.get(name)
        if found is None and ":" in name:
            found = self.policies.get(name.split(":", 1)[0] + ":*")
        return found or self.policy

    def get(self, name: str, *, policy: Breaker | None = None) -> CircuitBreaker:
        """The breaker named `name`, created on first use (with `policy` if given, else
        the registry's policy for the name)."""
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is not None:
                self._breakers.move_to_end(name)
                return breaker
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a breaker name must be a non-empty string, got {name!r}")
        fresh = CircuitBreaker(
            name,
            policy or self.policy_for(name),
            self.store,
            clock=self.clock,
            telemetry=self.telemetry,
            gate=self._gate,
            local=self._local,
            sync_interval=self.sync_interval,
            rng=self._rng,
        )
        with self._lock:
            breaker = self._breakers.setdefault(name, fresh)
            self._breakers.move_to_end(name)
            self._evict()
        return breaker

    def guarded(self, name: str) -> Guarded:
        """What runs calls for `name`: an adopted pybreaker breaker, else `get(name)`."""
        adopted = self._adopted.get(name)
        return adopted if adopted is not None else self.get(name)

    def _evict(self) -> None:
        """Drop least recently used breakers past the bound, sparing pinned ones."""
        excess = len(self._breakers) - self.max_breakers
        for old in list(self._breakers):
            if excess <= 0:
                break
            if old not in self._pinned:
                del self._breakers[old]
                excess -= 1

    def scoped(self, scope: Scope, key: str) -> CircuitBreaker:
        """The breaker for `key` in `scope` (named ``scope:key``)."""
        if scope not in ("global", "route", "tenant", "provider"):
            raise ConfigError(f"unknown breaker scope {scope!r}")
        return self.get(f"{scope}:{key}")

    def route(self, route: str) -> CircuitBreaker:
        """The breaker of a route template such as ``GET /v1/emails/{id}/analytics``."""
        return self.scoped("route", route)

    def tenant(self, tenant: str) -> CircuitBreaker:
        """The breaker of one tenant (API key, account)."""
        return self.scoped("tenant", tenant)

    def provider(self, provider: str) -> CircuitBreaker:
        """The breaker of an outbound provider (an SMTP relay, an API)."""
        return self.scoped("provider", provider)

    def protect(
        self,
        name: str | Callable[..., str],
        *,
        fallback: Callable[..., Any] | None = None,
    ) -> Callable[[F], F]:
        """Decorate a function so its calls run through a breaker of this registry.

        `name` is a breaker name, or a function of the call's arguments returning one
        (``registry.protect(lambda provider, msg: f"provider:{provider}")``).
        """
        from sendguard.breakers._calls import protect

        def pick(*args: Any, **kwargs: Any) -> Guarded:
            return self.guarded(name(*args, **kwargs) if callable(name) else name)

        def decorate(fn: F) -> F:
            if isinstance(name, str):
                with self._lock:
                    self._pinned.add(name)  # a decorator holds it: never evict it
            target: Guarded | Callable[..., Guarded] = (
                self.guarded(name) if isinstance(name, str) else pick
            )
            return protect(target, fn, fallback)  # type: ignore[return-value]

        return decorate

    def adopt(self, name: str, breaker: Any) -> PybreakerBreaker:
        """Put an existing `pybreaker.CircuitBreaker` under `name`.

        `protect(name)` then runs calls through it, concurrently and with asyncio support
        (see `sendguard.breakers.pybreaker_interop`).
        """
        from sendguard.breakers.pybreaker_interop import PybreakerBreaker

        adopted = PybreakerBreaker(name, breaker)
        with self._lock:
            if name in self._breakers:
                raise ConfigError(
                    f"breaker {name!r} is already in use (decorated or called): adopt "
                    "pybreaker breakers before anything uses their name"
                )
            self._adopted[name] = adopted
        return adopted

    def breakers(self) -> list[CircuitBreaker]:
        """The breakers this registry holds now."""
        with self._lock:
            return list(self._breakers.values())

    def info(self, name: str) -> BreakerInfo:
        """The shared state of `name` as the store has it now (raises if it is away)."""
        return BreakerInfo.from_view(name, self.store.read(name))

    def list(self) -> list[BreakerInfo]:
        """Every breaker the store knows, with its shared state."""
        names = set(self.store.names()) | {b.name for b in self.breakers()}
        return [BreakerInfo.from_view(n, self.store.read(n)) for n in sorted(names)]

    def force_open(self, name: str, reason: str, *, for_: float | None = None) -> None:
        """Refuse every call to `name` in every process sharing the store."""
        _check_override(reason, for_)
        adopted = self._adopted_for_override(name, for_)
        if adopted is not None:
            adopted.force_open()
            return
        self.get(name).force_open(reason, for_=for_)

    def force_closed(self, name: str, reason: str, *, for_: float | None = None) -> None:
        """Admit every call to `name` everywhere, recording nothing."""
        _check_override(reason, for_)
        adopted = self._adopted_for_override(name, for_)
        if adopted is not None:
            adopted.force_closed()
            return
        self.get(name).force_closed(reason, for_=for_)

    def _adopted_for_override(self, name: str, for_: float | None) -> PybreakerBreaker | None:
        adopted = self._adopted.get(name)
        if adopted is not None and for_ is not None:
            raise ConfigError(
                f"{name!r} is an adopted pybreaker breaker: pybreaker has no timed override, "
                "so force it without for_ and clear it yourself"
            )
        return adopted

    def clear_override(self, name: str) -> None:
        """Remove a forced state from `name`."""
        self.get(name).clear_override()

    def reset(self, name: str) -> None:
        """Clear overrides and close `name` with an empty window, everywhere."""
        self.get(name).reset()


def _check_override(reason: str, for_: float | None) -> None:
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError("a forced state needs a reason (say why, for the next operator)")
    if for_ is not None and not (isinstance(for_, int | float) and for_ > 0):
        raise ConfigError(f"a forced state lasts a positive number of seconds, got for_={for_!r}")


def _read_calls(registry: BreakerRegistry) -> Iterable[tuple[float, dict[str, str]]]:
    for breaker in registry.breakers():
        for outcome, count in zip(_OUTCOMES, breaker.stats.counts, strict=True):
            yield count, {"breaker": breaker.name, "outcome": outcome}


def _read_states(registry: BreakerRegistry) -> Iterable[tuple[float, dict[str, str]]]:
    for breaker in registry.breakers():
        yield 1, {"breaker": breaker.name, "state": breaker.state.value}
