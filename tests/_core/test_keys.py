"""Redis keys: one prefix, one hash tag per object, bounded and safe whatever the user sends."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendguard import ConfigError
from sendguard._core.keys import MAX_PART, key_part, make_key

SAFE = re.compile(r"[A-Za-z0-9_.\-/~]+")


@given(st.text(max_size=500))
def test_any_user_text_becomes_a_short_safe_part(value):
    part = key_part(value) if value else key_part(" ")
    assert SAFE.fullmatch(part)
    assert len(part) <= max(MAX_PART, 16 + 1 + 20)


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200))
def test_different_names_give_different_keys(a, b):
    if a != b:
        assert make_key("breaker", a, "state") != make_key("breaker", b, "state")


def test_plain_names_stay_readable_and_keys_carry_one_hash_tag():
    assert key_part("provider:smtp") != "provider:smtp"  # ':' is not plain: digested
    assert key_part("smtp-primary") == "smtp-primary"
    key = make_key("breaker", "route:GET /v1/emails/{id}/analytics", "state")
    assert key.startswith("sendguard:{breaker:")
    assert key.count("{") == 1
    assert key.count("}") == 1
    assert key.endswith("}:state")


def test_key_kind_is_validated():
    with pytest.raises(ConfigError, match="Breaker"):
        make_key("Breaker", "x", "state")
