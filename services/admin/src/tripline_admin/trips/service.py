"""Reading a trip for the console: the trip and its waypoints, at most `POSITION_LIMIT` of its
positions spread over its time, its latest alerts, and a user's latest trips.

Every read goes through an index and is bounded whatever the size of the trip or the tables:
the positions come from `ix_telemetry_events_trip_id_recorded_at_id` (one index per day
partition), either all of them when a trip has few, or, past the limit, the first fix of each
of `POSITION_LIMIT` equal slices of the trip's time, one index probe per slice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlmodel import col, select

from tripline_common.data.models import AlertRule, AlertSeverity, Trip, TripStatus, User
from tripline_common.platform import NotFoundError

POSITION_LIMIT = 2000
"""The most positions drawn on a trip's map."""
ALERT_LIMIT = 100
"""The most (latest) alerts shown with a trip."""


@dataclass(frozen=True)
class Fix:
    """A position received for a trip."""

    lat: float
    lon: float
    recorded_at: datetime


@dataclass(frozen=True)
class TripAlert:
    """An alert of a trip, with the position of its worst fix when its rule records one."""

    rule: AlertRule
    severity: AlertSeverity
    message: str
    raised_at: datetime
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class TripSummary:
    """A line of a user's trips."""

    id: uuid.UUID
    name: str
    status: TripStatus
    planned_start: datetime
    created_at: datetime


# The first fixes of the trip, in the index's order: all of them when there are fewer than
# `:limit` (the caller asks for one more than it draws, to know).
FIRST_FIXES = """
    SELECT lat, lon, recorded_at FROM telemetry_events
    WHERE trip_id = :trip_id
    ORDER BY recorded_at, id
    LIMIT :limit
"""

# Past the limit: the trip's first and last fix times (one probe at each end of the index),
# then the first fix of each of `:slots` equal slices of that time (a probe per slice), and
# the last fix. At most `:slots + 1` rows, however many fixes the trip has.
SPREAD_FIXES = """
    WITH span AS (
        SELECT min(recorded_at) AS first_at, max(recorded_at) AS last_at
        FROM telemetry_events WHERE trip_id = :trip_id
    )
    SELECT fix.lat, fix.lon, fix.recorded_at
    FROM span
    CROSS JOIN generate_series(0, CAST(:slots AS integer) - 1) AS slice(i)
    CROSS JOIN LATERAL (
        SELECT lat, lon, recorded_at FROM telemetry_events
        WHERE trip_id = :trip_id
          AND recorded_at >= span.first_at
                             + (span.last_at - span.first_at) * slice.i / CAST(:slots AS integer)
          AND recorded_at < span.first_at
                            + (span.last_at - span.first_at) * (slice.i + 1)
                              / CAST(:slots AS integer)
        ORDER BY recorded_at, id
        LIMIT 1
    ) AS fix
    UNION ALL
    (SELECT lat, lon, recorded_at FROM telemetry_events
     WHERE trip_id = :trip_id
     ORDER BY recorded_at DESC, id DESC
     LIMIT 1)
    ORDER BY recorded_at
"""

# The trip's latest alerts, from ix_alerts_trip_id_raised_at.
TRIP_ALERTS = """
    SELECT rule, severity, message, raised_at,
           (details ->> 'lat')::float8 AS lat, (details ->> 'lon')::float8 AS lon
    FROM alerts
    WHERE trip_id = :trip_id
    ORDER BY raised_at DESC
    LIMIT :limit
"""

# A user's latest trips, from ix_trips_owner_id_created_at.
USER_TRIPS = """
    SELECT id, name, status, planned_start, created_at FROM trips
    WHERE owner_id = :owner_id
    ORDER BY created_at DESC
    LIMIT :limit
"""

STATEMENTS = {
    "first_fixes": FIRST_FIXES,
    "spread_fixes": SPREAD_FIXES,
    "trip_alerts": TRIP_ALERTS,
    "user_trips": USER_TRIPS,
}
"""Every statement of the trip page (besides reading the trip by its key)."""


async def get_trip(*, session: AsyncSession, trip_id: uuid.UUID) -> tuple[Trip, User]:
    """The trip with its waypoints, and its owner; or 404."""
    row = (
        await session.execute(
            select(Trip, User)
            .join(User, col(User.id) == col(Trip.owner_id))
            .where(col(Trip.id) == trip_id)
            .options(selectinload(Trip.waypoints))
        )
    ).first()
    if row is None:
        raise NotFoundError("Trip not found.", code="trip_not_found")
    return row[0], row[1]


def _fixes(rows: Any) -> list[Fix]:
    return [Fix(lat=row.lat, lon=row.lon, recorded_at=row.recorded_at) for row in rows]


async def trip_positions(
    *, session: AsyncSession, trip_id: uuid.UUID, limit: int = POSITION_LIMIT
) -> list[Fix]:
    """The trip's positions, oldest first: every one while it has at most `limit`, else at
    most `limit` spread evenly over its time (the first and the last included)."""
    first = _fixes(
        await session.execute(text(FIRST_FIXES), {"trip_id": trip_id, "limit": limit + 1})
    )
    if len(first) <= limit:
        return first
    return _fixes(
        await session.execute(text(SPREAD_FIXES), {"trip_id": trip_id, "slots": limit - 1})
    )


async def trip_alerts(
    *, session: AsyncSession, trip_id: uuid.UUID, limit: int = ALERT_LIMIT
) -> list[TripAlert]:
    """The trip's latest alerts, newest first."""
    rows = await session.execute(text(TRIP_ALERTS), {"trip_id": trip_id, "limit": limit})
    return [
        TripAlert(
            rule=AlertRule(row.rule),
            severity=AlertSeverity(row.severity),
            message=row.message,
            raised_at=row.raised_at,
            lat=row.lat,
            lon=row.lon,
        )
        for row in rows
    ]


async def trips_of(
    *, session: AsyncSession, owner_id: uuid.UUID, limit: int = 10
) -> list[TripSummary]:
    """A user's latest trips, newest first."""
    rows = await session.execute(text(USER_TRIPS), {"owner_id": owner_id, "limit": limit})
    return [
        TripSummary(
            id=row.id,
            name=row.name,
            status=TripStatus(row.status),
            planned_start=row.planned_start,
            created_at=row.created_at,
        )
        for row in rows
    ]
