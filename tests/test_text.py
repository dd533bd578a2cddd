"""shorten: the one helper that fits text on a line, for every caller's limits."""

from __future__ import annotations

import pytest

from batchrun.text import shorten


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a  b\n\tc", 10, "a b c"),  # whitespace runs become one space
        ("abcde", 5, "abcde"),  # exactly the limit: kept whole
        ("abcdef", 5, "abcd…"),  # longer: cut so that the result fits the limit
        ("abc def", 5, "abc …"),  # the cut keeps the space before the mark
        ("a\x00b", 5, "a\x00b"),  # control characters are left alone
    ],
)
def test_shortens_to_fit_the_limit(text: str, limit: int, expected: str) -> None:
    assert shorten(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 200, "a" * 200),
        ("a" * 201, "a" * 200 + "…"),  # the mark goes beyond the 200 characters kept
    ],
)
def test_cut_to_keeps_that_many_characters_before_the_mark(text: str, expected: str) -> None:
    assert shorten(text, 200, cut_to=200) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a\nb\r\n\tc\u2028d\x00e\x1b[0m", 120, "a b c d e [0m"),
        ("abc def", 5, "abc…"),  # no space left before the mark
        ("word " * 100, 120, ("word " * 24).strip() + "…"),
    ],
)
def test_tidy_blanks_control_characters_and_trims_the_cut(
    text: str, limit: int, expected: str
) -> None:
    assert shorten(text, limit, tidy=True) == expected
