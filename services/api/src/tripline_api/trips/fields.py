"""Field types and limits of trip input, the same in every trips version.

Input is strict: numbers must be JSON numbers (not `true` or `"5"`), NaN and infinities are
refused, times need a UTC offset and a plausible year.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic.json_schema import SkipJsonSchema

from tripline_common.data import NameText
from tripline_common.web import IsoDateTime

MAX_WAYPOINTS = 50
MAX_BULK_ITEMS = 100
MAX_SPEED_LIMIT_KMH = 500
MAX_CORRIDOR_M = 100_000
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099


def _plausible_year(value: datetime) -> datetime:
    # Also keeps far-away years (0001-01-01T00:00+05:00) from overflowing when made UTC.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be in the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return value


Latitude = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
TripName = Annotated[str, NameText(200)]
PlannedTime = Annotated[
    IsoDateTime,
    AfterValidator(_plausible_year),
    # The year rule, stated in the schema too (a pattern is all JSON Schema has for it).
    Field(json_schema_extra={"pattern": r"^20[0-9]{2}-"}),
]
SpeedLimit = Annotated[float, Field(strict=True, gt=0, le=MAX_SPEED_LIMIT_KMH, allow_inf_nan=False)]
CorridorWidth = Annotated[float, Field(strict=True, gt=0, le=MAX_CORRIDOR_M, allow_inf_nan=False)]

NotNull = SkipJsonSchema[None]
"""For PATCH fields that may be left out but not set to null: `name: TripName | NotNull = None`
documents a string only, and `PartialUpdate` refuses an explicit null with a 422."""

STATUS_DESCRIPTION = (
    "planned -> active -> completed, or cancelled before completion. Completed and cancelled "
    "are final; any other move is a 409."
)
