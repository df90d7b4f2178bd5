"""Redis key building: one prefix, a Cluster hash tag per guard object, bounded safe parts.

Every key looks like ``sendguard:{<kind>:<name>}:<field>``. The braces are a Redis Cluster
hash tag, so all keys of one breaker (or limit, or ledger entry) live in one slot and a
Lua script may touch them together. User-supplied parts are kept readable when they are
short and plain, and replaced by a digest otherwise, so a key never carries braces,
spaces, control characters or unbounded length.
"""

from __future__ import annotations

import hashlib
import re

from sendguard._core.errors import ConfigError

__all__ = ["KEY_PREFIX", "MAX_PART", "key_part", "make_key"]

KEY_PREFIX = "sendguard"
MAX_PART = 48
_PLAIN = re.compile(r"[A-Za-z0-9_.\-/]+")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,23}")


def key_part(value: str) -> str:
    """Return `value` if it is short and plain, else a readable stem plus a digest."""
    if len(value) <= MAX_PART and _PLAIN.fullmatch(value):
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()
    stem = "".join(ch if _PLAIN.fullmatch(ch) else "_" for ch in value[:16])
    return f"{stem}~{digest}"


def make_key(kind: str, name: str, field: str) -> str:
    """Build ``sendguard:{kind:name}:field``; `kind` and `field` are ours, `name` the user's."""
    if not _KIND.fullmatch(kind):
        raise ConfigError(f"key kind must be a short lower-case word, got {kind!r}")
    return f"{KEY_PREFIX}:{{{kind}:{key_part(name)}}}:{field}"
