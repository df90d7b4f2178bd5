"""The pure core of the payload check: walk a value once, type-check it, size it, stop early.

The size of a payload is the length in bytes of ``json.dumps(payload)`` with Python's
defaults (``", "`` and ``": "`` separators, ASCII output), which is exactly what RQ's JSON
serializer writes; allow-listed values count as the strings they are encoded as
(`encode_extra`). The walk subtracts each piece from what is left of the budget and
stops as soon as nothing is left, so a 5 MB value costs as much to reject as its first
piece that does not fit: a long string is judged by its length before it is escaped, and
a container's brackets and separators are charged before its items are visited.

Nothing here knows about queues, policies or telemetry: `measure_payload` raises
`Refusal` (a private exception carrying the violation and the path) and the caller
turns it into `PayloadRejected`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json.encoder
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sendguard.jobs._errors import Violation

__all__ = [
    "DEFAULT_EXTRA_TYPES",
    "Refusal",
    "advice_for",
    "describe_size",
    "encode_extra",
    "measure_payload",
    "measure_value",
    "type_name",
]

DEFAULT_EXTRA_TYPES: tuple[type, ...] = (
    uuid.UUID,
    dt.datetime,
    dt.date,
    decimal.Decimal,
    enum.Enum,
)
"""Values accepted besides JSON-native ones (each is encoded as a string, an Enum as its value)."""

_escape = json.encoder.encode_basestring_ascii
_int_repr = int.__repr__
_float_repr = float.__repr__


class Refusal(Exception):
    """Why the walk stopped: the rule, where (innermost segment last), and what was there."""

    __slots__ = ("left", "path", "root", "size", "value", "violation")

    def __init__(self, violation: Violation, value: object, size: int = 0, left: int = 0) -> None:
        super().__init__(violation.value)
        self.violation = violation
        self.value = value
        self.size = size
        """For SIZE: the piece's size (a lower bound); then, once `total`, the whole count."""
        self.left = left
        """For SIZE: what was left of the budget when the piece did not fit."""
        self.path: list[int | str] = []
        """Indexes and keys from the innermost out (appended while the walk unwinds)."""
        self.root = "value"

    def total(self, limit: int) -> None:
        """Turn `size` into the bytes counted in all: what was used plus the piece."""
        if self.violation is Violation.SIZE:
            self.size += limit - self.left

    def where(self) -> str:
        """The path as Python would index it: ``args[0]['body']``."""
        return self.root + "".join(f"[{part!r}]" for part in reversed(self.path))


def encode_extra(value: object) -> object:
    """How an allow-listed value is written: ``json.dumps(..., default=encode_extra)``."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date):  # datetime is a date
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _extra_size(value: object, left: int, depth: int, extra: tuple[type, ...]) -> int:
    """The allow-list: strings for UUID, date/datetime and Decimal; an Enum as its value."""
    if isinstance(value, enum.Enum):
        return _size(value.value, left, depth, extra)
    if isinstance(value, decimal.Decimal) and not value.is_finite():
        raise Refusal(Violation.VALUE, value)
    return _charge(len(_escape(str(encode_extra(value)))), value, left)


def _charge(n: int, value: object, left: int) -> int:
    if n > left:
        raise Refusal(Violation.SIZE, value, n, left)
    return left - n


def _size(value: object, left: int, depth: int, extra: tuple[type, ...]) -> int:
    """What is `left` of the budget after `value`; raises `Refusal` (its path still empty)."""
    t = type(value)
    if t is str:
        s: str = value  # type: ignore[assignment]
        if len(s) + 2 > left:  # escaping only lengthens it
            raise Refusal(Violation.SIZE, value, len(s) + 2, left)
        return _charge(len(_escape(s)), value, left)
    if t is int:
        bits: int = value.bit_length()  # type: ignore[attr-defined]
        if bits > 4 * left:  # over `left` digits, known without printing it
            raise Refusal(Violation.SIZE, value, int((bits - 1) * 0.30102) + 1, left)
        try:
            return _charge(len(_int_repr(value)), value, left)
        except ValueError:  # more digits than int->str conversion allows
            raise Refusal(Violation.VALUE, value) from None
    if t is list or t is tuple:
        items: Sequence[Any] = value  # type: ignore[assignment]
        return _sequence(items, left, depth, extra)
    if t is dict:
        return _mapping(value, left, depth, extra)  # type: ignore[arg-type]
    if value is None or t is bool:
        return _charge(5 if value is False else 4, value, left)
    if t is float:
        number: float = value  # type: ignore[assignment]
        if not math.isfinite(number):
            raise Refusal(Violation.VALUE, value)
        return _charge(len(_float_repr(number)), value, left)
    return _other(value, left, depth, extra)


def _other(value: object, left: int, depth: int, extra: tuple[type, ...]) -> int:
    """Subclasses of the JSON types (json encodes them as their base), then the allow-list."""
    if isinstance(value, str):  # a StrEnum, markupsafe.Markup: json writes the text
        return _size(str.__str__(value), left, depth, extra)
    if isinstance(value, bool):
        return _charge(4 if value else 5, value, left)
    if isinstance(value, int):  # an IntEnum: json writes int.__repr__
        return _size(int(value), left, depth, extra)
    if isinstance(value, float):
        return _size(float(value), left, depth, extra)
    if isinstance(value, list | tuple):
        return _sequence(value, left, depth, extra)
    if isinstance(value, dict):
        return _mapping(value, left, depth, extra)
    if extra and isinstance(value, extra):
        return _extra_size(value, left, depth, extra)
    raise Refusal(Violation.TYPE, value)


def _sequence(items: Sequence[Any], left: int, depth: int, extra: tuple[type, ...]) -> int:
    if depth <= 0:
        raise Refusal(Violation.DEPTH, items)
    n = len(items)
    left = _charge(2 * n if n else 2, items, left)  # "[" "]" and n - 1 ", "
    for index, item in enumerate(items):
        if type(item) is str:  # lists of ids, the common case: sized inline, as _size does
            size = len(_escape(item)) if len(item) + 2 <= left else len(item) + 2
            if size <= left:
                left -= size
                continue
        try:
            left = _size(item, left, depth - 1, extra)
        except Refusal as refusal:
            refusal.path.append(index)
            raise
    return left


def _mapping(items: Mapping[Any, Any], left: int, depth: int, extra: tuple[type, ...]) -> int:
    if depth <= 0:
        raise Refusal(Violation.DEPTH, items)
    n = len(items)
    left = _charge(4 * n if n else 2, items, left)  # "{" "}", n ": " and n - 1 ", "
    for key, item in items.items():
        if type(key) is not str and not isinstance(key, str):
            raise Refusal(Violation.KEY, key)  # the path names the dict
        try:
            left = _charge(len(_escape(key)), key, left)
            left = _size(item, left, depth - 1, extra)
        except Refusal as refusal:
            refusal.path.append(key)
            raise
    return left


def measure_value(
    value: object, limit: int, *, extra: tuple[type, ...] = DEFAULT_EXTRA_TYPES, depth: int = 32
) -> int:
    """``len(json.dumps(value))`` if it is at most `limit`; else `Refusal` (SIZE).

    Also `Refusal` for a value outside the type policy (TYPE, KEY, VALUE, DEPTH).
    """
    try:
        return limit - _size(value, limit, depth, extra)
    except Refusal as refusal:
        refusal.total(limit)
        raise


def measure_payload(
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    limit: int,
    *,
    extra: tuple[type, ...] = DEFAULT_EXTRA_TYPES,
    depth: int = 32,
) -> int:
    """The size of ``json.dumps([args, kwargs])`` if it is at most `limit`, else `Refusal`.

    A refusal's path starts at ``args`` or ``kwargs`` (see `Refusal.where`); for SIZE its
    `size` is the bytes counted up to and including the piece that did not fit.
    """
    root = "args"
    try:
        left = _charge(4, args, limit)  # "[" + ", " + "]"
        left = _sequence(args, left, depth, extra)
        root = "kwargs"
        left = _mapping(kwargs, left, depth, extra)
    except Refusal as refusal:
        refusal.root = root
        refusal.total(limit)
        raise
    return limit - left


def type_name(value: object) -> str:
    """``app.models.Email`` for an instance of that class (builtins: just the name)."""
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def describe_size(n: int) -> str:
    """``812 B``, ``64 KiB``, ``5.0 MiB``: a byte count as people read it."""
    if n < 1024:
        return f"{n} B"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value.is_integer() else f"{value:.1f} {unit}"
    raise AssertionError(n)  # pragma: no cover


def _has_id(value: object) -> str | None:
    for attr in ("pk", "id"):
        if hasattr(type(value), attr) or attr in getattr(value, "__dict__", ()):
            return attr
    return None


def advice_for(violation: Violation, value: object, depth: int) -> str:
    """What to pass instead (the end of a rejection message)."""
    if violation is Violation.KEY:
        return "dict keys must be str: convert them with str(key)"
    if violation is Violation.VALUE:
        if isinstance(value, int):
            return "an int this long does not fit JSON: pass it as a str"
        return "JSON has no NaN or Infinity: pass None or a str"
    if violation is Violation.DEPTH:
        return f"it is nested deeper than {depth} levels (a circular reference?): pass an id"
    if violation is Violation.SIZE:
        return "store large content elsewhere (a database row, object storage) and pass its id"
    if violation is Violation.BATCH:
        return "enqueue fewer or leaner jobs per batch (ids, not objects)"
    if isinstance(value, bytes | bytearray | memoryview):
        return "store the bytes elsewhere (object storage, a database row) and pass the key"
    if isinstance(value, set | frozenset):
        return "pass a sorted list"
    attr = _has_id(value)
    if attr is not None:
        return f"pass its {attr}"
    if dataclasses.is_dataclass(value):
        return "pass its id, or a dict of the few fields the job needs"
    if callable(value):
        return "pass the function's dotted name as a str"
    return "pass JSON-native values (str, int, float, bool, None, lists, dicts with str keys)"
