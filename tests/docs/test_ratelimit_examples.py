"""The examples of docs/ratelimit.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter (as a reader would run it), with warnings as
errors. The doc must show each file verbatim, under its name, so the two cannot drift.
The one Redis example runs against the test bed's real redis-server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import http_sf
import pytest
import redis

from tests.docs._examples import Examples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ratelimit.md"
EXAMPLES = ROOT / "docs" / "examples" / "ratelimit"
EXAMPLES_SET = Examples("ratelimit")


def example_files() -> dict[str, Path]:
    """The example files (the package marker aside)."""
    return {p.name: p for p in EXAMPLES.glob("*.py") if p.name != "__init__.py"}


def run_example(name: str, **env: str) -> list[str]:
    """Run one example in a fresh interpreter; return its stdout lines."""
    return EXAMPLES_SET.run(name, **env)


def number_after(pattern: str, lines: list[str]) -> float:
    """The number captured by `pattern` in the first line that matches it."""
    for line in lines:
        found = re.search(pattern, line)
        if found:
            return float(found.group(1))
    raise AssertionError(f"no line matches {pattern!r} in {lines}")


def structured_list(value: str) -> list[tuple[str, dict[str, object]]]:
    """A RateLimit field parsed as an HTTP Structured Field list: (name, parameters)."""
    parsed: Any = http_sf.parse(value.encode(), tltype="list")
    return [(str(item), dict(params)) for item, params in parsed]


# --- one check per example file --------------------------------------------------------


def check_quickstart(out: list[str]) -> None:
    assert out[:2] == [
        "analytics: [200, 200, 429, 429, 429]",
        "refused: application/problem+json Too Many Requests",
    ]
    assert out[2] in ("Retry-After: 1", "Retry-After: 2")  # 0.5 to 1.5 s, rounded up
    assert out[3] == 'RateLimit-Policy: "route-1s";q=2;w=1, "route-60s";q=10;w=60'
    assert re.fullmatch(r'RateLimit: "route-1s";r=0;t=1, "route-60s";r=8;t=\d+', out[4])
    assert 1 <= number_after(r'"route-60s";r=8;t=(\d+)', out) <= 60
    assert re.fullmatch(r'archive: 200 200 "route-60s";r=99;t=\d+', out[5])
    assert out[6] == "healthz: 200 False"
    assert len(out) == 7


def check_baseline_and_overrides(out: list[str]) -> None:
    assert out == [
        "GET /v1/emails/{id}/analytics: limits=['1/60s'] bulkhead=20 breaker=True",
        "DELETE /v1/emails/{id}: limits=['5/60s'] bulkhead=20 breaker=True",
        "GET /archive/{slug}: limits=['3/60s'] bulkhead=20 breaker=True",
        "GET /v1/emails/em_7/analytics -> GET /v1/emails/{id}/analytics",
        "PUT /v1/emails/em_7 -> PUT /v1/emails/{id}",
        "GET /no/such/page -> GET *",
        "/v1/emails/em_1/analytics ...: [200, 429, 429, 429]",
        "/archive/a ...: [200, 200, 200, 429]",
        "/no/such/page ...: [404, 404, 404, 429]",
    ]


def check_groups_and_app_limits(out: list[str]) -> None:
    assert out == [
        '/v1/exports/contacts: 200 "app-60s";r=5;t=10, "group-60s";r=1;t=10',
        '/v1/exports/events: 200 "app-60s";r=4;t=10, "group-60s";r=0;t=10',
        '/v1/exports/contacts: 429 "app-60s";r=4;t=10, "group-60s";r=0;t=10',
        "emails: [200, 200, 200, 200]",
        "refused by: rate limit 6/60s on app reached; retry in 19.6s",
        "another client: 200",
    ]


def check_cost_and_exemptions(out: list[str]) -> None:
    sends = [f'POST /v1/emails: 200 "group-60s";r={r};t=56' for r in (29, 28, 27, 26, 25)]
    assert out == [
        *sends,
        'POST /v1/emails/batch: 200 "group-60s";r=15;t=56',
        'POST /v1/emails/batch: 200 "group-60s";r=5;t=56',
        'POST /v1/emails/batch: 429 "group-60s";r=0;t=56',
        "healthz: [200, 200, 200] False",
    ]


def check_keys(out: list[str]) -> None:
    assert out == [
        "acme, two keys: [200, 200, 429]",
        "globex: [200]",
        "made-up keys, by account: [200, 200, 429, 429]",
        "made-up keys, raw header: [200, 200, 200, 200]",
        "archive from 203.0.113.1: [200, 200, 200, 429]",
        "archive from 203.0.113.2: [200, 200, 200, 429]",
    ]


def check_trusted_proxies(out: list[str]) -> None:
    assert out == [
        "untrusted peer, spoofed header: [200, 200, 429, 429]",
        "via 10.0.0.2, client 192.0.2.44: [200, 200, 429]",
        "via 10.0.0.3, same client: [429]",
        "uvicorn proxy_headers on: [200, 200, 200, 200]",
        "uvicorn proxy_headers off: [200, 200, 429, 429]",
    ]


def check_store_failure(out: list[str]) -> None:
    for direction, statuses, header in (
        ("local", "[200, 200, 429, 429]", '"route-60s";r=1;t=19'),
        ("allow", "[200, 200, 200, 200]", '"route-60s";r=1;t=60'),
        ("deny", "[429, 429, 429, 429]", "-"),
    ):
        start = out.index(f"on_store_failure={direction!r}:")
        assert out[start + 1 : start + 4] == [
            "  event: ratelimit store redis unavailable (ConnectionError)",
            f"  statuses: {statuses} | RateLimit: {header}",
            "  shared store in use: False; 4 requests in under 0.5 s: True",
        ]
    assert len(out) == 12


def check_bulkheads(out: list[str]) -> None:
    assert out == [
        "burst: 4 served, 16 shed with Retry-After 1",
        "every shed request answered before the first served one: True",
        "thumbnails: [200, 200, 200, 200]",
        "waited for a slot: 2",
    ]


def check_pacer(out: list[str]) -> None:
    assert out == [
        "t=0.0 send to a@gmail.com (waited 0.0 s)",
        "t=1.0 send to b@gmail.com (waited 1.0 s)",
        "t=1.0 send to c@example.org (waited 0.0 s)",
        "t=2.0 send to d@gmail.com (waited 1.0 s)",
        "t=2.0 send to e@example.org (waited 0.0 s)",
        "refused: pace_timeout, next slot in 60 s",
        "1/second;120/hour waits: [0.0, 30.0, 30.0]",
        "burst=3 waits: [0.0, 0.0, 0.0, 1.0, 1.0]",
        "60 sends at 1/second: a window admits 30; the pacer sends all in 59 s",
    ]


def check_limits_adapter(out: list[str]) -> None:
    assert out == [
        "sendguard memory: allowed=[True, True, False, False] 5/minute remaining=[4, 3, 3, 3]",
        "limits memory://: allowed=[True, True, False, False] 5/minute remaining=[4, 3, 3, 2]",
    ]


def check_telemetry(out: list[str]) -> None:
    route = "GET /v1/emails/{id}/analytics"
    assert out[:2] == [
        f"event: sendguard.guard.refusals RequestRefused(route='{route}', reason='RateLimited')",
        "in flight while the request ran: [1, 1]",
    ]
    assert set(out[2:]) == {
        f"metric: sendguard.guard.decisions {{'route': '{route}', 'decision': 'admitted'}} = 2",
        f"metric: sendguard.guard.decisions {{'route': '{route}', 'decision': 'limited'}} = 1",
        f"metric: sendguard.bulkhead.in_flight {{'bulkhead': '{route}'}} = 0",
        f"metric: sendguard.guard.refusals {{'route': '{route}', 'reason': 'RateLimited'}} = 1",
    }


def check_headers(out: list[str]) -> None:
    policy = 'ratelimit-policy: "route-1s";q=2;w=1, "route-60s";q=100;w=60'
    state = 'ratelimit: "route-1s";r=0;t=1, "route-60s";r=98;t=19'
    blocks = "\n".join(out).split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["HTTP 200", "HTTP 429", "HTTP 503", "HTTP 503"]
    for block in blocks:
        assert policy in block.splitlines()
        assert state in block.splitlines()
    assert "retry-after: 1" in blocks[1].splitlines()
    assert "retry-after: 30" in blocks[2].splitlines()
    assert "retry-after: 1" in blocks[3].splitlines()
    assert structured_list(policy.split(": ", 1)[1]) == [
        ("route-1s", {"q": 2, "w": 1}),
        ("route-60s", {"q": 100, "w": 60}),
    ]
    assert structured_list(state.split(": ", 1)[1]) == [
        ("route-1s", {"r": 0, "t": 1}),
        ("route-60s", {"r": 98, "t": 19}),
    ]
    kinds = ["rate-limited", "breaker-open", "bulkhead-full"]
    for block, kind in zip(blocks[1:], kinds, strict=True):
        body = block.splitlines()[-1]
        assert body.startswith(f'{{"type":"urn:sendguard:problem:{kind}","title":')
        assert "content-type: application/problem+json" in block.splitlines()


def check_config_errors(out: list[str]) -> None:
    assert not [line for line in out if "accepted?!" in line]
    assert len(out) == 15
    expected_values = {
        "unparseable rate": "'ten per fortnight'",
        "negative bulkhead": "-1",
        "unknown method": "'FETCH /v1/emails'",
        "broken parameter": "'{id'",
        "cost above limit": "5/60s",
        "bad proxy": "'10.0.0.300'",
        "store direction": "'maybe'",
        "unknown store": "ftp://example.com",
    }
    for what, value in expected_values.items():
        line = next(line for line in out if line.startswith(f"{what}: "))
        assert value in line, line


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "quickstart.py": check_quickstart,
    "baseline_and_overrides.py": check_baseline_and_overrides,
    "groups_and_app_limits.py": check_groups_and_app_limits,
    "cost_and_exemptions.py": check_cost_and_exemptions,
    "keys.py": check_keys,
    "trusted_proxies.py": check_trusted_proxies,
    "store_failure.py": check_store_failure,
    "bulkheads.py": check_bulkheads,
    "pacer.py": check_pacer,
    "limits_adapter.py": check_limits_adapter,
    "telemetry.py": check_telemetry,
    "headers.py": check_headers,
    "config_errors.py": check_config_errors,
}
REDIS_EXAMPLE = "shared_redis.py"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_on_embedded_defaults(name):
    CHECKS[name](run_example(name))


@pytest.mark.redis
def test_shared_redis_example_against_a_real_redis(redis_url):
    out = run_example(REDIS_EXAMPLE, SENDGUARD_STORE=redis_url)
    assert out[:3] == [
        "worker a: [200, 200, 200]",
        "worker b: [200, 200, 429]",  # five a minute in all, whichever worker
        "script runs for 2 requests with 2 limits each: 2",  # one round trip per request
    ]
    keys = [line for line in out if line.startswith("key: ")]
    assert len(keys) == 4
    pattern = r"key: sendguard:\{rl:[0-9a-f]{24}\}:route_GET_/v1/em~[0-9a-f]{20}/(10/1|5/60) hash"
    assert all(re.fullmatch(pattern, k) for k in keys), keys
    assert out[3 + len(keys) :] == [
        "hash tags (one per client): 2",
        "worker b, export: 503 urn:sendguard:problem:bulkhead-full 1",
        "leases held in Redis: 1",
        "worker a, export: 200",
        "worker b, export again: 200",
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.keys("sendguard:*") == []  # the example tidies up after itself
    finally:
        client.close()


# --- the doc and the files agree ----------------------------------------------------------


def test_every_example_file_has_a_check():
    assert set(example_files()) == set(CHECKS) | {REDIS_EXAMPLE}


@pytest.mark.parametrize("name", sorted({*CHECKS, REDIS_EXAMPLE}))
def test_the_doc_shows_each_example_verbatim_under_its_name(name):
    EXAMPLES_SET.assert_shown_verbatim(name)


def test_every_python_block_in_the_doc_is_an_example_file():
    EXAMPLES_SET.assert_python_blocks_are_files()


def test_the_doc_names_no_example_that_does_not_exist():
    doc = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"docs/examples/ratelimit/([\w.]+\.py)", doc))
    assert named, "the doc names no example"
    assert named <= set(example_files())


def test_examples_pass_ruff():
    EXAMPLES_SET.assert_ruff_clean(Path(__file__).relative_to(ROOT))


@pytest.mark.slow
def test_examples_pass_mypy_strict():
    EXAMPLES_SET.assert_mypy_strict()
