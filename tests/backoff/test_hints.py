"""Retry-After and RateLimit parsing: good values read, malformed ones ignored safely."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendguard import BreakerOpen
from sendguard.backoff import hint_from, parse_ratelimit_reset, parse_retry_after

NOW = 1_445_412_470.0  # Wed, 21 Oct 2015 07:27:50 GMT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("  0 ", 0.0),
        ("1.5", 1.5),
        (b"30", 30.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 10.0),  # RFC 850
        ("Wed Oct 21 07:28:00 2015", 10.0),  # asctime
        ("Tue, 20 Oct 2015 07:28:00 GMT", 0.0),  # in the past: come back now
    ],
)
def test_retry_after_values_are_read(value, expected):
    assert parse_retry_after(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [None, "", "-5", "soon", "1e3", "NaN", "inf", "12 s", "0x10", "1" * 300, 42, "Wed, 99 Foo"],
)
def test_malformed_retry_after_values_are_ignored(value):
    assert parse_retry_after(value, NOW) is None


@given(st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_no_header_value_makes_the_parsers_raise(value):
    hint = parse_retry_after(value, NOW)
    assert hint is None or hint >= 0
    reset = parse_ratelimit_reset(value)
    assert reset is None or reset >= 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"default";r=0;t=30', 30.0),
        ('"day";r=0;t=3600, "burst";r=0;t=2', 3600.0),
        ('"day";r=100;t=3600, "burst";r=0;t=2', 2.0),
        ('"default";r=5;t=30', None),  # quota left: nothing to wait for
        ('"a,b";r=0;t=4', 4.0),  # commas inside a quoted name
        ("default;t=30", None),  # no r: not exhausted as far as we know
        ('"default";r=0;t=soon', None),
        ("limit=10, remaining=0, reset=30", None),  # an older draft's syntax: not ours
    ],
)
def test_ratelimit_t_of_exhausted_policies(value, expected):
    assert parse_ratelimit_reset(value) == expected


def test_hints_from_responses_errors_and_rejections():
    request = httpx.Request("GET", "https://api.example.com/")
    assert hint_from(httpx.Response(503, headers={"Retry-After": "4"}), NOW) == 4.0
    assert hint_from(httpx.Response(429, headers={"ratelimit": '"d";r=0;t=9'}), NOW) == 9.0
    both = httpx.Response(429, headers={"Retry-After": "3", "RateLimit": '"d";r=0;t=9'})
    assert hint_from(both, NOW) == 3.0  # Retry-After is the server's own word
    error = httpx.HTTPStatusError("x", request=request, response=httpx.Response(503))
    assert hint_from(error, NOW) is None
    assert hint_from(httpx.ConnectError("refused", request=request), NOW) is None
    refused = BreakerOpen("open", retry_after=12.5, key="k", policy=None, reason="open")
    assert hint_from(refused, NOW) == 12.5
    assert hint_from(object(), NOW) is None


def test_hints_from_plain_dict_headers_are_case_insensitive():
    class Answer:
        status_code = 503
        headers = {"retry-after": "6"}  # noqa: RUF012

    assert hint_from(Answer(), NOW) == 6.0
