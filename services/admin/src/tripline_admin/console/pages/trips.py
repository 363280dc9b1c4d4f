"""The console's trip page: the trip's facts and a map of its planned route, corridor,
received positions and alerts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from tripline_admin.console.rendering import render
from tripline_admin.console.security import ConsoleUser
from tripline_admin.console.trip_map import AlertPlace, Place, TripMap, trip_map
from tripline_admin.trips import service
from tripline_admin.trips.service import Fix, TripAlert
from tripline_common.data.models import Trip
from tripline_common.web import SessionDep

router = APIRouter(prefix="/trips")


def draw_trip(trip: Trip, positions: list[Fix], alerts: list[TripAlert]) -> TripMap:
    """The trip's map: origin, waypoints and destination; the positions; the alerts that
    recorded where they happened."""
    route = [
        Place(trip.origin_lat, trip.origin_lon),
        *(Place(w.lat, w.lon) for w in trip.waypoints),
        Place(trip.destination_lat, trip.destination_lon),
    ]
    return trip_map(
        route,
        [Place(p.lat, p.lon) for p in positions],
        [
            AlertPlace(
                lat=a.lat,
                lon=a.lon,
                css=a.severity.value,
                title=f"{a.rule.value.replace('_', ' ')}: {a.message}",
            )
            for a in alerts
            if a.lat is not None and a.lon is not None
        ],
        corridor_m=trip.corridor_m,
    )


@router.get("/{trip_id}")
async def trip_page(
    request: Request, trip_id: uuid.UUID, user: ConsoleUser, session: SessionDep
) -> Response:
    trip, owner = await service.get_trip(session=session, trip_id=trip_id)
    positions = await service.trip_positions(session=session, trip_id=trip_id)
    alerts = await service.trip_alerts(session=session, trip_id=trip_id)
    return render(
        request,
        "trip.html",
        {
            "nav": "users",
            "trip": trip,
            "owner": owner,
            "positions": positions,
            "position_limit": service.POSITION_LIMIT,
            "alerts": alerts,
            "map": draw_trip(trip, positions, alerts),
        },
    )
