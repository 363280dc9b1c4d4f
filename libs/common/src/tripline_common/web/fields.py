"""Field types of request input that more than one app validates: ISO 8601 date-times."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator


def _text_times_only(value: object) -> object:
    # Lax mode would read a number, even as text (`?raised_to=0.5`, `"1796112000"`), as seconds
    # since 1970: a client bug, and not the `date-time` string the schema documents. Query
    # parameters are always text, so refusing JSON numbers alone would not be enough.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
    raise ValueError("must be an ISO 8601 date-time string with an offset")


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(_text_times_only)]
"""A date-time with a UTC offset, sent as ISO 8601 text (never as a number of seconds)."""
