"""Rules for the names people give things: one set for JSON input and for file imports."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

WAYPOINT_NAME_MAX_LENGTH = 100

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")

# A cell starting with one of these is run as a formula by spreadsheets (`=HYPERLINK(...)`):
# names end up in files people open in one, so they may not start like a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@")


def clean_name(value: str) -> str:
    """`value` without surrounding whitespace; `ValueError` when it is blank, holds a control
    character, or is not encodable text.

    PostgreSQL text cannot hold NUL and a lone surrogate cannot be encoded: both are refused
    here rather than failing in the database; other control characters have no business in a
    name either."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if _CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def clean_waypoint_name(value: str) -> str:
    """A waypoint's name by `clean_name`, at most `WAYPOINT_NAME_MAX_LENGTH` characters and not
    starting with a spreadsheet formula prefix (`FORMULA_PREFIXES`); else `ValueError`."""
    value = clean_name(value)
    if len(value) > WAYPOINT_NAME_MAX_LENGTH:
        raise ValueError(f"is longer than {WAYPOINT_NAME_MAX_LENGTH} characters")
    if value.startswith(FORMULA_PREFIXES):
        raise ValueError("must not start with =, +, - or @ (a spreadsheet formula)")
    return value


WaypointName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=WAYPOINT_NAME_MAX_LENGTH,
        description="At most 100 characters, no control characters, and not starting with "
        "=, +, - or @ (spreadsheets run such a cell as a formula).",
    ),
    AfterValidator(clean_waypoint_name),
]
"""A waypoint's name, as the trips API and the waypoint importer both accept it."""
