"""The examples of docs/middleware.md are real: each file runs and prints what the doc says.

Every example runs in a fresh interpreter (as a reader would run it), with warnings as
errors, and drives its app in-process: httpx's ASGI transport for Starlette and FastAPI,
Flask's test client, a WSGI call for Django. The doc must show each file verbatim, under
its name, so the two cannot drift.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "middleware.md"
EXAMPLES = ROOT / "docs" / "examples" / "middleware"


def example_files() -> dict[str, Path]:
    return {p.name: p for p in EXAMPLES.glob("*.py") if p.name != "__init__.py"}


def run_example(name: str) -> list[str]:
    """Run one example file; return its stdout lines (a non-zero exit fails the test)."""
    environ = {k: v for k, v in os.environ.items() if k != "SENDGUARD_STORE"}
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLES / name)],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.splitlines()


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
        "email: 200 {'id': 'em_1'} | \"route-100-per-60s\";q=100;w=60",
        "healthz: 200 False",
    ]


def check_flask_app(out: list[str]) -> None:
    assert re.fullmatch(r'/v1/emails/1: 200 "route-2-per-60s";r=1;t=\d+', out[0])
    assert re.fullmatch(r'/v1/emails/2: 200 "route-2-per-60s";r=0;t=\d+', out[1])
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
    doc = DOC.read_text(encoding="utf-8")
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    block = f"`docs/examples/middleware/{name}`:\n\n```python\n{source}```\n"
    assert block in doc, f"docs/middleware.md does not show {name} as it is on disk"


def test_every_python_block_in_the_doc_is_an_example_file():
    doc = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", doc, flags=re.DOTALL | re.MULTILINE)
    sources = {p.read_text(encoding="utf-8") for p in example_files().values()}
    assert len(blocks) == len(sources)
    for block in blocks:
        assert block in sources, f"a Python block in the doc is no example file:\n{block}"


def test_the_doc_names_no_example_that_does_not_exist():
    doc = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"docs/examples/middleware/([\w.]+\.py)", doc))
    assert named, "the doc names no example"
    assert named <= set(example_files())


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'", pytrace=False)
    return found


def test_examples_pass_ruff():
    run = subprocess.run(
        [_tool("ruff"), "check", "docs/examples/middleware", "tests/docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
def test_examples_pass_mypy_strict():
    run = subprocess.run(
        [_tool("mypy"), "--strict", "--no-error-summary", "docs/examples/middleware"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
