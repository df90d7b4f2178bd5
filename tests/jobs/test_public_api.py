"""`sendguard.jobs`'s public face, and what importing it costs."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

MODULES = [
    "sendguard.jobs",
    "sendguard.jobs.rq",
    "sendguard.jobs.celery",
    "sendguard.jobs.redis_store",
    "sendguard.jobs.postgres_store",
]


def test_importing_the_package_imports_no_optional_dependency():
    code = (
        "import sys, sendguard.jobs; "
        "print([m for m in ('redis', 'rq', 'celery', 'kombu', 'psycopg') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", MODULES)
def test_all_is_sorted_complete_and_documented(name):
    module = importlib.import_module(name)
    exported = list(module.__all__)

    def order(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)

    assert exported == sorted(exported, key=order)
    assert len(exported) == len(set(exported))
    home = "sendguard" if name == "sendguard.jobs" else name  # a submodule: what it defines
    public = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith(home)
    }
    assert public <= set(exported), public - set(exported)
    for item in exported:
        obj = getattr(module, item)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{item} has no docstring"
