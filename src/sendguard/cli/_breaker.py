"""``sendguard breaker list | open | close | clear | reset``: operator controls on shared breakers.

They act on the shared store (Redis) that the app's workers use, so a breaker forced open
here is refused by every worker within one `sync_interval`. They talk to the store
directly and fail loudly (exit 1) if it cannot be reached, rather than changing only a
local copy as a running app would.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

from sendguard._core.durations import format_duration
from sendguard._core.durations import parse_duration as _parse_duration
from sendguard._core.errors import ConfigError, StoreUnavailable
from sendguard._core.store import REDIS_SCHEMES
from sendguard.breakers import BreakerInfo, BreakerStore, State, open_store

__all__ = ["STORE_ENV", "parse_duration", "register"]

STORE_ENV = "SENDGUARD_STORE"
STORE_TIMEOUT = 2.0
"""Seconds a store command may take from the command line (a remote Redis, TLS setup)."""

Action = Callable[[argparse.Namespace, BreakerStore, str], int]
"""A breaker subcommand: parsed arguments, the open store and its URL -> exit status."""


def parse_duration(text: str) -> float:
    """`sendguard._core.durations.parse_duration` as an argparse type."""
    try:
        return _parse_duration(text)
    except ConfigError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def _redact(url: str) -> str:
    """`url` without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _store_url(args: argparse.Namespace) -> str:
    """The shared store's URL from --store or the environment, or a usage error."""
    parser: argparse.ArgumentParser = args.parser
    url: str = args.store or os.environ.get(STORE_ENV, "")
    if not url or url == "memory" or url.startswith("memory://"):
        parser.error(
            "breaker commands act on the shared store your workers use, and no shared store "
            f"was given: pass --store redis://HOST:6379/0 or set {STORE_ENV}"
        )
    if not url.startswith(REDIS_SCHEMES):
        parser.error(
            f"unknown store {_redact(url)!r}: use redis://HOST:PORT/DB or redis+cluster://HOST:PORT"
        )
    return url


@contextlib.contextmanager
def _connect(url: str) -> Iterator[BreakerStore]:
    store = open_store(url, timeout=STORE_TIMEOUT)  # longer than a request path's 0.1 s
    try:
        yield store
    finally:
        store.close()


def _runner(action: Action) -> Callable[[argparse.Namespace], int]:
    """A handler that opens the store, runs `action`, and reports a store failure (exit 1)."""

    def run(args: argparse.Namespace) -> int:
        url = _store_url(args)
        with _connect(url) as store:
            try:
                return action(args, store, url)
            except StoreUnavailable as exc:
                print(f"sendguard: the breaker store did not answer: {exc}", file=sys.stderr)
                return 1

    return run


def _time_left(info: BreakerInfo) -> str:
    if info.override is not None:
        left = info.override_remaining
        return "until cleared" if left is None else format_duration(left)
    return format_duration(info.open_remaining) if info.state is State.OPEN else "-"


def _list(args: argparse.Namespace, store: BreakerStore, url: str) -> int:
    infos = [BreakerInfo.from_view(name, store.read(name)) for name in store.names()]
    if not infos:
        print(f"no breakers in {_redact(url)} yet")
        return 0
    header = ["name", "state", "reason", "override reason", "time left"]
    rows = [
        [i.name, i.state.value, i.reason or "-", i.override_reason or "-", _time_left(i)]
        for i in infos
    ]
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]
    for row in (header, ["-" * w for w in widths], *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _warn_if_unknown(name: str, store: BreakerStore) -> None:
    """A typo would force a breaker nobody uses: say so, with the likely intended names."""
    known = store.names()
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    close += [k for k in known if k.endswith(f":{name}") and k not in close]
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    print(f"warning: no worker has used a breaker named {name!r} yet{hint}", file=sys.stderr)


def _override(args: argparse.Namespace, store: BreakerStore, url: str, state: State) -> int:
    reason = args.reason.strip()
    if not reason:
        args.parser.error("--reason must say why (for the next operator)")
    _warn_if_unknown(args.name, store)
    store.set_override(args.name, state, reason, args.for_)
    span = "until cleared" if args.for_ is None else f"for {format_duration(args.for_)}"
    effect = "refuses" if state is State.FORCED_OPEN else "admits, without recording,"
    print(
        f"{args.name!r} is {state.value.replace('_', ' ')} {span} ({reason}): every worker "
        f"sharing {_redact(url)} {effect} its calls"
    )
    return 0


def _open(args: argparse.Namespace, store: BreakerStore, url: str) -> int:
    return _override(args, store, url, State.FORCED_OPEN)


def _close(args: argparse.Namespace, store: BreakerStore, url: str) -> int:
    return _override(args, store, url, State.FORCED_CLOSED)


def _clear(args: argparse.Namespace, store: BreakerStore, url: str) -> int:
    view = store.set_override(args.name, None, "", None)
    print(f"{args.name!r}: override cleared; it is {view.state.value}")
    return 0


def _reset(args: argparse.Namespace, store: BreakerStore, url: str) -> int:
    view = store.reset(args.name)
    print(f"{args.name!r}: reset; it is {view.state.value} with no override")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``breaker`` command and its subcommands."""
    group = commands.add_parser(
        "breaker", help="list, force open or closed, clear or reset shared breakers"
    )
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store", metavar="URL", help=f"the shared store, redis://... (default: ${STORE_ENV})"
    )

    def add(name: str, action: Action, doc: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, parents=[common], help=doc, description=doc)
        parser.set_defaults(run=_runner(action), parser=parser)
        if name != "list":
            parser.add_argument("name", metavar="NAME", help='a breaker, e.g. "provider:smtp"')
        return parser

    add("list", _list, "list the breakers in the store with their state")
    for name, action, doc, required in (
        ("open", _open, "refuse every call, in every worker, for a while", True),
        ("close", _close, "admit every call (recording nothing), in every worker", False),
    ):
        parser = add(name, action, doc)
        parser.add_argument(
            "--for",
            dest="for_",
            type=parse_duration,
            required=required,
            metavar="DURATION",
            help="how long: 90s, 30m, 2h, 1d" + ("" if required else " (default: until cleared)"),
        )
        parser.add_argument("--reason", required=True, help="why (shown by breaker list)")
    add("clear", _clear, "remove a forced state; the breaker carries on as it was")
    add("reset", _reset, "clear any forced state and close the breaker, everywhere")
