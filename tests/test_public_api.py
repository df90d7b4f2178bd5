"""Every package's public face: a sorted, complete `__all__` whose names all resolve."""

from __future__ import annotations

import importlib
import inspect

import pytest

PACKAGES = [
    "sendguard",
    "sendguard.backoff",
    "sendguard.breakers",
    "sendguard.health",
    "sendguard.jobs",
    "sendguard.pipeline",
    "sendguard.ratelimit",
    "sendguard.testing",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name):
    module = importlib.import_module(name)
    exported = list(module.__all__)

    # isort-style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions
    def order(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)

    assert exported == sorted(exported, key=order), f"{name}.__all__ is not sorted"
    assert len(exported) == len(set(exported))
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item!r}, which does not exist"


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_class_and_function_is_exported_and_documented(name):
    module = importlib.import_module(name)
    public = {
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "").startswith("sendguard")
    }
    assert public <= set(module.__all__), f"not in {name}.__all__: {public - set(module.__all__)}"
    for item in module.__all__:
        obj = getattr(module, item)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name}.{item} has no docstring"


def test_the_root_does_not_import_optional_dependencies():
    import subprocess
    import sys

    code = (
        "import sys, sendguard, sendguard.breakers, sendguard.backoff, sendguard.ratelimit, "
        "sendguard.health, sendguard.jobs; "
        "bad = [m for m in ('redis', 'psycopg', 'psycopg_pool', 'httpx', 'pybreaker', 'rq', "
        "'celery', 'cryptography') "
        "if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
