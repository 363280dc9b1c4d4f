"""Rules for the names people give things (users, devices, trips, waypoints): one validator,
`clean_name`, for JSON input, forms and file imports, and the JSON-Schema `pattern` that says
the same in the published documents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, Field

WAYPOINT_NAME_MAX_LENGTH = 100
DEVICE_NAME_MAX_LENGTH = 100

_CONTROL = r"\x00-\x1f\x7f"
_CONTROL_CHARACTERS = re.compile(f"[{_CONTROL}]")

# A cell starting with one of these is run as a formula by spreadsheets (`=HYPERLINK(...)`):
# names end up in files people open in one, so they may not start like a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@")

BLANKS = r"\t\n\x0b\x0c\r\x1c-\x1f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What `str.strip()` removes (`str.isspace`) as the inside of a regex character class, written
out: JSON Schema's regex dialects disagree on `\\s`, and Python counts U+001C..U+001F as blanks
where they do not."""


def _name_pattern(first: str = "") -> str:
    # Blanks around (stripped), then a name that starts and ends with a visible character and
    # holds no control character. Anchored, and written in the subset that ECMA-262 (JSON
    # Schema's dialect), Rust's regex crate and Python's `re` read alike; a trailing newline,
    # which Python's `$` lets through, is a blank here anyway.
    blanks, visible = f"[{BLANKS}]*", f"[^{_CONTROL}{BLANKS}]"
    return rf"^{blanks}[^{_CONTROL}{BLANKS}{first}](?:[^{_CONTROL}]*{visible})?{blanks}$"


NAME_PATTERN = _name_pattern()
"""Exactly the strings `clean_name` accepts (that are valid Unicode: a lone surrogate is
refused too, and no regex dialect of JSON Schema can say so)."""

WAYPOINT_NAME_PATTERN = _name_pattern(first=r"=+\-@")
"""Exactly the strings `clean_waypoint_name` accepts within its length (as `NAME_PATTERN`)."""

NAME_RULE = (
    "Surrounding blanks are trimmed; it may not be blank or hold a control character "
    "(U+0000 to U+001F, U+007F)."
)
"""The rule of `NAME_PATTERN` in words, for the fields' descriptions."""


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


@dataclass(frozen=True)
class NameText(GroupedMetadata):
    """`Annotated[str, NameText(n)]`: a name of at most `n` characters checked by `clean_name`,
    its rule published as `NAME_PATTERN` (the validator, not the pattern, checks: its messages
    say what is wrong)."""

    max_length: int

    def __iter__(self) -> Iterator[object]:
        yield Field(
            min_length=1, max_length=self.max_length, json_schema_extra={"pattern": NAME_PATTERN}
        )
        yield AfterValidator(clean_name)


DeviceName = Annotated[str, NameText(DEVICE_NAME_MAX_LENGTH)]
"""A device's name, as owners (the API) and operators (the admin API) give it."""

WaypointName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=WAYPOINT_NAME_MAX_LENGTH,
        json_schema_extra={"pattern": WAYPOINT_NAME_PATTERN},
    ),
    AfterValidator(clean_waypoint_name),
]
"""A waypoint's name, as the trips API and the waypoint importer both accept it."""
