"""`IsoDateTime`: request times are ISO 8601 text with an offset (or a datetime already),
never a number of seconds, even when the number comes as text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from tripline_common.web import IsoDateTime

ISO_TIME = TypeAdapter(IsoDateTime)


@pytest.mark.parametrize(
    "value",
    ["2026-12-01T08:00:00Z", "2026-12-01 09:00:00+01:00", datetime(2026, 12, 1, 8, tzinfo=UTC)],
)
def test_iso_text_with_an_offset_and_aware_datetimes_are_taken(value: object) -> None:
    assert ISO_TIME.validate_python(value) == datetime(2026, 12, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    "value", [1796112000, 0.5, "1796112000", "0.5", "nan", "2026-12-01T08:00:00", "soon"]
)
def test_numbers_even_as_text_and_times_without_an_offset_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        ISO_TIME.validate_python(value)
