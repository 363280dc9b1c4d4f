"""The version-neutral trip input the service works with; each API version converts to it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class WaypointDraft:
    """An intermediate point; its position in the trip's list is its visiting order."""

    lat: float
    lon: float
    name: str | None = None


@dataclass(frozen=True)
class TripDraft:
    """Every field of a trip's plan, already validated for shape by an API model."""

    name: str
    device_id: uuid.UUID | None
    origin_lat: float
    origin_lon: float
    destination_lat: float
    destination_lon: float
    planned_start: datetime
    planned_arrival: datetime
    speed_limit_kmh: float | None
    corridor_m: float | None
    waypoints: tuple[WaypointDraft, ...] = ()
