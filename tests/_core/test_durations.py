"""Durations typed by operators and printed for them."""

from __future__ import annotations

import pytest

from sendguard import ConfigError
from sendguard._core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("45", 45),
        ("0.5", 0.5),
    ],
)
def test_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "5x", "m", "1.2.3s", "0s"])
def test_bad_durations_name_the_text(text):
    with pytest.raises(ConfigError, match="bad duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.00004, "0.00s"),
        (0.25, "0.25s"),
        (4.21, "4.2s"),
        (42, "42s"),
        (1799, "29m 59s"),
        (5400, "1h 30m"),
        (273600, "3d 04h"),
    ],
)
def test_format(seconds, text):
    assert format_duration(seconds) == text
