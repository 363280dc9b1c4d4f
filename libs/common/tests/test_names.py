"""Name rules: what a waypoint may be called, in a request and in an imported file alike."""

from __future__ import annotations

import pytest

from tripline_common.data import clean_waypoint_name


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
