"""`tripline_common.web.IsoDateTime` in the API: the time filters of trips and alerts take
ISO 8601 text with an offset, and refuse numbers (seconds since 1970), even as query text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from tripline_api.alerts.schemas import AlertFilters
from tripline_api.trips.schemas import TripFilters

TIME_FILTERS = [
    (TripFilters, "planned_start_from"),
    (TripFilters, "planned_start_to"),
    (AlertFilters, "raised_from"),
    (AlertFilters, "raised_to"),
]


@pytest.mark.parametrize(("filters", "name"), TIME_FILTERS)
@pytest.mark.parametrize("text", ["2026-12-01T08:00:00Z", "2026-12-01T09:00:00+01:00"])
def test_time_filters_take_iso_text_with_an_offset(
    filters: type[BaseModel], name: str, text: str
) -> None:
    parsed = filters.model_validate({name: text})

    assert getattr(parsed, name) == datetime(2026, 12, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(("filters", "name"), TIME_FILTERS)
@pytest.mark.parametrize("value", ["1796112000", "0.5", "nan", 1796112000, "2026-12-01T08:00:00"])
def test_time_filters_refuse_numbers_even_as_text_and_times_without_offset(
    filters: type[BaseModel], name: str, value: object
) -> None:
    with pytest.raises(ValidationError) as refused:
        filters.model_validate({name: value})

    assert [error["loc"] for error in refused.value.errors()] == [(name,)]
