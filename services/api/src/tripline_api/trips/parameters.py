"""Path and query parameters of the trips endpoints (every version)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path, Query

from tripline_api.trips.schemas import TripFilters

# Routes declare `{trip_id:uuid}`: a path that is not a UUID matches no trip route, so it is a
# 404 (and `PUT /trips/stats` a 405), never a validation error on a route that does not apply.
TripId = Annotated[uuid.UUID, Path(description="The trip's ID.")]
TripFiltersQuery = Annotated[TripFilters, Query()]
