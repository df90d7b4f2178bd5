"""Route patterns: ``"METHOD /path/{param}"`` compiled once, matched without regexes per call.

A pattern names a method (or ``*``) and a path whose segments are literals, ``{name}``
(one segment) or a final ``{name:path}`` (the rest). Requests are always reduced to a
pattern, never to their raw path, so per-route state stays bounded: a path no pattern
matches falls into its method's catch-all, ``"GET *"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sendguard._core.errors import ConfigError

__all__ = ["RoutePattern", "catch_all", "parse_pattern"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "*"})
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::path)?\}")


@dataclass(frozen=True, slots=True)
class RoutePattern:
    """A compiled ``"METHOD /path"`` pattern."""

    text: str
    method: str
    segments: tuple[str | None, ...]
    """Literal segments, None for a one-segment parameter."""
    rest: bool
    """True when the last parameter takes the rest of the path."""

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Sort key: more literal segments first, then longer, then an exact method."""
        literals = sum(1 for s in self.segments if s is not None)
        return (-literals, -len(self.segments), 0 if self.method != "*" else 1)

    def matches(self, method: str, path: str) -> bool:
        """Does a request for `method` `path` fall under this pattern?"""
        if self.method != "*" and self.method != method:
            return False
        parts = path.strip("/").split("/") if path.strip("/") else []
        if self.rest:
            if len(parts) < len(self.segments) + 1:
                return False
        elif len(parts) != len(self.segments):
            return False
        return all(s is None or s == p for s, p in zip(self.segments, parts, strict=False))


def parse_pattern(text: str) -> RoutePattern:
    """Compile `text`; a malformed pattern is a `ConfigError` naming it."""
    if not isinstance(text, str):
        raise ConfigError(f"a route pattern is a string like 'GET /v1/emails/{{id}}', got {text!r}")
    method, _, path = text.strip().partition(" ")
    method = method.upper()
    if method not in METHODS or not path.startswith("/") or " " in path.strip():
        raise ConfigError(
            f"malformed route pattern {text!r}: expected 'METHOD /path' "
            f"with METHOD one of {', '.join(sorted(METHODS))}"
        )
    path = path.strip()
    raw = path.strip("/").split("/") if path.strip("/") else []
    segments: list[str | None] = []
    rest = False
    for i, seg in enumerate(raw):
        if "{" in seg or "}" in seg:
            m = _PARAM.fullmatch(seg)
            if m is None:
                raise ConfigError(f"malformed route pattern {text!r}: bad parameter {seg!r}")
            if seg.endswith(":path}"):
                if i != len(raw) - 1:
                    raise ConfigError(
                        f"malformed route pattern {text!r}: {{name:path}} must come last"
                    )
                rest = True
                continue
            segments.append(None)
        elif not seg:
            raise ConfigError(f"malformed route pattern {text!r}: empty path segment")
        else:
            segments.append(seg)
    return RoutePattern(f"{method} {path}", method, tuple(segments), rest)


def catch_all(method: str) -> str:
    """The route name of requests that no pattern matches."""
    return f"{method} *"
