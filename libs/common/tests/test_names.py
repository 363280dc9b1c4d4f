"""Name rules: what a waypoint may be called, in a request and in an imported file alike, and
the published pattern that says the same."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

import pytest

from tripline_common.data import clean_name, clean_waypoint_name
from tripline_common.data.names import NAME_PATTERN, WAYPOINT_NAME_PATTERN


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("  Depot 7 ", "Depot 7"),
        ("Köln Hbf", "Köln Hbf"),
        ("Gate B-12 = north", "Gate B-12 = north"),  # Only a leading sign makes a formula.
        ("x" * 100, "x" * 100),
    ],
)
def test_plain_names_are_kept_without_surrounding_blanks(raw, kept) -> None:
    assert clean_waypoint_name(raw) == kept


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("   ", "blank"),
        ("nul\x00byte", "control characters"),
        ("tab\tinside", "control characters"),
        ("del\x7f", "control characters"),
        ("lone \ud800 surrogate", "valid Unicode"),
        ("x" * 101, "longer than 100"),
        ('=HYPERLINK("http://evil.example","Click")', "spreadsheet formula"),
        ("+1+cmd|' /C calc'!A0", "spreadsheet formula"),
        ("-2+3", "spreadsheet formula"),
        ("@SUM(A1)", "spreadsheet formula"),
        ("  =1+1", "spreadsheet formula"),  # Leading blanks are stripped first.
    ],
)
def test_names_a_spreadsheet_or_the_database_would_misread_are_refused(raw, reason) -> None:
    with pytest.raises(ValueError, match=reason):
        clean_waypoint_name(raw)


# Blanks of every kind `str.strip` removes, controls inside and around, C1 controls (not refused:
# the rule is U+0000..U+001F and U+007F), formula signs, and text beyond ASCII.
PATTERN_CASES = [
    "Depot 7",
    "x",
    " x ",
    "\tx\n",
    "\r\nx\r\n",
    "x\n",  # Python's `$` would match before this newline; the pattern must agree anyway.
    "\x0bx\x0c",
    "\x1cx\x1f",  # Controls Python counts as blanks: stripped at the ends...
    "x\x1cy",  # ...refused inside.
    "tab\tinside",
    "new\nline",
    "nul\x00byte",
    "\x00",
    "del\x7f",
    "\x7fdel",
    "c1\x80\x9f",
    "\x85x\x85",
    "x\x85y",
    "\x9bcsi",
    "\u00a0x\u3000",
    "x\u2028y",
    "\u2029",
    "   ",
    "",
    "\t\n",
    "Köln Hbf",
    "東京駅",
    "emoji 🚐",
    "\u200bzero width",
    "=1+1",
    "  =1+1",
    "+49",
    "-2",
    "@home",
    "a=b",
    "x-",
]


def _rust_regex_accepts(pattern: str, value: str) -> bool:
    # pydantic-core matches `pattern` with Rust's regex crate, the dialect Pydantic documents.
    from pydantic import Field, TypeAdapter, ValidationError

    try:
        TypeAdapter(Annotated[str, Field(pattern=pattern)]).validate_python(value)
    except ValidationError:
        return False
    return True


def _accepts(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("check", "pattern"),
    [(clean_name, NAME_PATTERN), (clean_waypoint_name, WAYPOINT_NAME_PATTERN)],
    ids=["name", "waypoint name"],
)
def test_the_published_name_pattern_accepts_exactly_what_the_validator_accepts(
    check, pattern
) -> None:
    for value in PATTERN_CASES:
        accepted = _accepts(check, value)
        assert (re.search(pattern, value) is not None) is accepted, repr(value)
        assert _rust_regex_accepts(pattern, value) is accepted, repr(value)
