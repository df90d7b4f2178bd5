"""`sendguard.backoff`'s public face, and the optional httpx dependency kept out of its root."""

from __future__ import annotations

import subprocess
import sys

import pytest

import sendguard.backoff


def test_all_is_sorted_and_every_name_resolves():
    exported = list(sendguard.backoff.__all__)

    def order(n: str) -> tuple[int, str]:
        return (0 if n.isupper() else 1 if n[:1].isupper() else 2, n)

    assert exported == sorted(exported, key=order)
    assert len(exported) == len(set(exported))
    for name in exported:
        assert getattr(sendguard.backoff, name) is not None


def test_importing_the_package_does_not_import_httpx():
    code = (
        "import sys, sendguard.backoff; print('httpx' in sys.modules); "
        "from sendguard.backoff import RetryTransport; print('httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        sendguard.backoff.Nope  # noqa: B018
