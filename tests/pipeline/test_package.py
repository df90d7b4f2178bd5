"""sendguard.pipeline's public face: every name resolves, and importing it stays light."""

from __future__ import annotations

import inspect
import subprocess
import sys

import sendguard.pipeline as pipeline


def test_every_exported_name_resolves_and_is_documented():
    exported = list(pipeline.__all__)

    def order(n: str) -> tuple[int, str]:  # as ruff's RUF022 and tests/test_public_api.py
        return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)

    assert exported == sorted(exported, key=order) and len(set(exported)) == len(exported)
    for name in exported:
        value = getattr(pipeline, name)
        assert inspect.getdoc(value), f"sendguard.pipeline.{name} has no docstring"
    assert set(exported) <= set(dir(pipeline))


def test_importing_the_package_loads_no_optional_dependency():
    code = (
        "import sys, sendguard.pipeline; "
        "print([m for m in ('starlette', 'rq', 'redis', 'psycopg', 'aiosmtpd', 'uvicorn', "
        "'httpx') if m in sys.modules])"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
