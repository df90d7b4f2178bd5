"""The examples of docs/middleware.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter (as a reader would run it), with warnings as
errors, and drives its app in-process: httpx's ASGI transport for Starlette and FastAPI,
Flask's test client, a WSGI call for Django. The doc must show each file verbatim, under
its name, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.docs._examples import Examples

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "middleware.md"
EXAMPLES = ROOT / "docs" / "examples" / "middleware"
EXAMPLES_SET = Examples("middleware")


def example_files() -> dict[str, Path]:
    return {p.name: p for p in EXAMPLES.glob("*.py") if p.name != "__init__.py"}


def run_example(name: str) -> list[str]:
    """Run one example in a fresh interpreter; return its stdout lines."""
    return EXAMPLES_SET.run(name)


def number_after(pattern: str, lines: list[str]) -> float:
    """The number captured by `pattern` in the first line that matches it."""
    for line in lines:
        found = re.search(pattern, line)
        if found:
            return float(found.group(1))
    raise AssertionError(f"no line matches {pattern!r} in {lines}")


# --- one check per example file --------------------------------------------------------


def check_starlette_app(out: list[str]) -> None:
    assert out == [
        "/v1/emails/em_1, /v1/emails/em_2, /v1/emails/em_3: [200, 200, 429]"
        " -> GET /v1/emails/{email_id}",
        "/archive/spring, /archive/summer: [200, 429] -> GET /archive/{slug}",
        "/files/a.txt, /files/deep/b.txt: [200, 429] -> GET /files/{path:path}",
        "/nope, /other/missing: [404, 429] -> GET *",
        "/healthz, /healthz: [200, 200] -> exempt",
    ]


def check_fastapi_app(out: list[str]) -> None:
    assert out[0] == "analytics: [200, 200, 429]"
    assert out[1].startswith("refused: GET /v1/emails/{email_id}/analytics | Retry-After: ")
    # 2 a minute, both counted: the rest of this minute plus half of the next, rounded up
    # (a little less if the minute turned between the requests)
    assert 29 <= number_after(r"Retry-After: (\d+)$", out) <= 90
    assert out[2:] == [
        "email: 200 {'id': 'em_1'} | \"route-60s\";q=100;w=60",
        "healthz: 200 False",
    ]


def check_flask_app(out: list[str]) -> None:
    assert re.fullmatch(r'/v1/emails/1: 200 "route-60s";r=1;t=\d+', out[0])
    assert re.fullmatch(r'/v1/emails/2: 200 "route-60s";r=0;t=\d+', out[1])
    assert out[2] == "/v1/emails/3: 429 GET /v1/emails/{email_id}"
    assert out[3].startswith(
        "/v1/reports/weekly: [500, 500, 500, 503] | urn:sendguard:problem:breaker-open "
    )
    assert 27 <= number_after(r"breaker-open (\d+)$", out) <= 33  # 30 s +- 10 % jitter
    assert len(out) == 4


def check_django_app(out: list[str]) -> None:
    assert out == [
        '/v1/emails/1/analytics: 200 OK | {"email": 1, "opens": 3}',
        '/v1/emails/2/analytics: 200 OK | {"email": 2, "opens": 3}',
        "/v1/emails/3/analytics: 429 Too Many Requests | application/problem+json",
        "refused: GET /v1/emails/{email_id}/analytics"
        " | retry_after in the body and header agree: True",
        "/healthz: 200 OK | RateLimit fields: False",
    ]


def check_decorators(out: list[str]) -> None:
    assert out == [
        "queued for a@example.com",
        "queued for b@example.com",
        "refused: RateLimited, retry_after=84.8513 s",
        "queued for d@example.com",
        "analytics: {'opens': 3}",
        "refused: BulkheadFull, retry_after=1 s",
        "webhooks: [502, 502]",
        "refused: BreakerOpen (open), retry_after=30 s",
    ]


def check_route_names(out: list[str]) -> None:
    assert out == [
        "GET /v1/emails/em_123 -> GET /v1/emails/{id} ['60/60s']",
        "GET /v1/emails/em_456 -> GET /v1/emails/{id} ['60/60s']",
        "GET /v1/emails/drafts -> GET /v1/emails/drafts ['10/60s']",
        "PUT /v1/files/a/b/c.txt -> PUT /v1/files/{rest:path} ['30/60s']",
        "GET /v1/emails/em_123/opens -> GET * ['100/60s']",
        "POST /wp-login.php -> POST * ['100/60s']",
        "GET /healthz -> GET /healthz exempt",
        "template -> GET /v1/emails/{email_id} ['60/60s']",
    ]


def check_streaming_and_lifespan(out: list[str]) -> None:
    chunks = [
        line
        for n in range(3)
        for line in (f"chunk: b'row {n}\\n'", "  another export meanwhile: 503")
    ]
    assert out == [
        "start: 200 ['ratelimit-policy', 'ratelimit']",
        *chunks,
        "after the stream: 200",
        "server got: lifespan.startup.complete",
        "lifespan shutdown: guard.aclose() called",
        "server got: lifespan.shutdown.complete",
    ]


def check_breaker_feedback(out: list[str]) -> None:
    assert out == [
        "errors: [503, 404, 500]",
        "errors: [500, 502, 503]",
        "slow: [200, 200, 200, 503]",
        "gateway: [500, 500, 500, 502, 502, 503]",
    ]


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "starlette_app.py": check_starlette_app,
    "fastapi_app.py": check_fastapi_app,
    "flask_app.py": check_flask_app,
    "django_app.py": check_django_app,
    "decorators.py": check_decorators,
    "route_names.py": check_route_names,
    "streaming_and_lifespan.py": check_streaming_and_lifespan,
    "breaker_feedback.py": check_breaker_feedback,
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs(name):
    CHECKS[name](run_example(name))


# --- the doc and the files agree ----------------------------------------------------------


def test_every_example_file_has_a_check():
    assert set(example_files()) == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_doc_shows_each_example_verbatim_under_its_name(name):
    EXAMPLES_SET.assert_shown_verbatim(name)


def test_every_python_block_in_the_doc_is_an_example_file():
    EXAMPLES_SET.assert_python_blocks_are_files()


def test_the_doc_names_no_example_that_does_not_exist():
    doc = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"docs/examples/middleware/([\w.]+\.py)", doc))
    assert named, "the doc names no example"
    assert named <= set(example_files())


def test_examples_pass_ruff():
    EXAMPLES_SET.assert_ruff_clean(Path(__file__).relative_to(ROOT))


@pytest.mark.slow
def test_examples_pass_mypy_strict():
    EXAMPLES_SET.assert_mypy_strict()
