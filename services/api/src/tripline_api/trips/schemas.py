"""The trip models every trips version shares: the bases each version's models build on (plan,
partial update, public trip, bulk result) and the models that are the same in every version
(waypoints, filters, statistics).

Input models refuse unknown fields (field types: `trips.fields`). Output models only mirror
what the database guarantees, so a stored row always serialises. Each version adds its
positions (`schemas_v1.py`: flat `*_lat` / `*_lon` fields, `schemas_v2.py`: `{lat, lon}`
objects).
"""

from __future__ import annotations

import uuid
from abc import abstractmethod
from datetime import datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    model_validator,
)

from tripline_api.trips.drafts import TripDraft, WaypointDraft
from tripline_api.trips.fields import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    MAX_BULK_ITEMS,
    MAX_CORRIDOR_M,
    MAX_SPEED_LIMIT_KMH,
    MAX_WAYPOINTS,
    STATUS_DESCRIPTION,
    CorridorWidth,
    Latitude,
    Longitude,
    NotNull,
    PlannedTime,
    SpeedLimit,
    TripName,
)
from tripline_common.data import NAME_RULE, WaypointName
from tripline_common.data.models import TripStatus
from tripline_common.platform import AppError, ErrorResponse, UnprocessableError

INPUT_CONFIG = ConfigDict(extra="forbid")

# --- Waypoints -----------------------------------------------------------------------------------


class WaypointIn(BaseModel):
    """An intermediate point; its place in the list is its visiting order."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"lat": 53.0, "lon": 11.0}]}
    )

    lat: Latitude = Field(description="Latitude, WGS 84 degrees.", examples=[53.0])
    lon: Longitude = Field(description="Longitude, WGS 84 degrees.", examples=[11.0])
    name: WaypointName | None = Field(
        default=None,
        description=f"Optional label, e.g. a depot name (1 to 100 characters). {NAME_RULE} It may "
        "not start with =, +, - or @ (a spreadsheet formula).",
        examples=["Depot 7"],
    )

    def to_draft(self) -> WaypointDraft:
        return WaypointDraft(lat=self.lat, lon=self.lon, name=self.name)


class WaypointPublic(BaseModel):
    """A stored waypoint."""

    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="Visiting order within the trip, from 0.", examples=[0])
    lat: float = Field(description="Latitude, WGS 84 degrees.", examples=[53.0])
    lon: float = Field(description="Longitude, WGS 84 degrees.", examples=[11.0])
    name: str | None = Field(description="Optional label.", examples=["Depot 7"])


Waypoints = Annotated[
    list[WaypointIn],
    Field(
        max_length=MAX_WAYPOINTS,
        description=f"Intermediate points in visiting order (at most {MAX_WAYPOINTS}); "
        "replaces any previous list.",
    ),
]


# --- Writing a trip: in full (create, replace) or in part (PATCH) --------------------------------


class TripPlan(BaseModel):
    """What every version's trip input has in common: name, device, schedule, rules and
    waypoints (the coordinates of origin and destination are where versions differ)."""

    model_config = INPUT_CONFIG

    name: TripName = Field(
        description=f"What the trip is called (1 to 200 characters). {NAME_RULE}",
        examples=["Berlin to Hamburg"],
    )
    device_id: uuid.UUID | None = Field(
        default=None,
        description="One of your devices, expected to make the trip; null: not assigned yet. "
        "Any other ID is a 422 (`unknown_device`).",
    )
    planned_start: PlannedTime = Field(
        description=f"When the trip should start (ISO 8601 with offset; years {EARLIEST_YEAR} "
        f"to {LATEST_YEAR}).",
        examples=["2026-12-01T08:00:00Z"],
    )
    planned_arrival: PlannedTime = Field(
        description="When it should end; later than `planned_start`. Arriving later raises a "
        "`late` alert.",
        examples=["2026-12-01T11:30:00Z"],
    )
    speed_limit_kmh: SpeedLimit | None = Field(
        default=None,
        description=f"Faster telemetry raises a `speeding` alert (0 < v <= "
        f"{MAX_SPEED_LIMIT_KMH}); null: no rule.",
        examples=[130],
    )
    corridor_m: CorridorWidth | None = Field(
        default=None,
        description=f"Allowed distance from the route in metres (0 < d <= {MAX_CORRIDOR_M}); "
        "null: no rule.",
        examples=[2000],
    )
    waypoints: Waypoints = Field(default_factory=list)

    @model_validator(mode="after")
    def _arrival_after_start(self) -> Self:
        if self.planned_arrival <= self.planned_start:
            raise ValueError("planned_arrival must be later than planned_start")
        return self

    @abstractmethod
    def to_draft(self) -> TripDraft:
        """The version-neutral plan the service works with (each version supplies the
        positions)."""

    def _draft(self, origin: tuple[float, float], destination: tuple[float, float]) -> TripDraft:
        return TripDraft(
            name=self.name,
            device_id=self.device_id,
            origin_lat=origin[0],
            origin_lon=origin[1],
            destination_lat=destination[0],
            destination_lon=destination[1],
            planned_start=self.planned_start,
            planned_arrival=self.planned_arrival,
            speed_limit_kmh=self.speed_limit_kmh,
            corridor_m=self.corridor_m,
            waypoints=tuple(waypoint.to_draft() for waypoint in self.waypoints),
        )


class PartialUpdate(BaseModel):
    """Base of PATCH bodies: at least one field, and `null` only where a field may be empty."""

    model_config = INPUT_CONFIG
    nullable: ClassVar[frozenset[str]] = frozenset({"device_id", "speed_limit_kmh", "corridor_m"})

    @model_validator(mode="after")
    def _something_to_change(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        nulled = sorted(
            name for name in self.model_fields_set - self.nullable if getattr(self, name) is None
        )
        if nulled:
            raise ValueError(f"cannot be null: {', '.join(nulled)}")
        return self

    def to_changes(self) -> dict[str, Any]:
        """The changed fields, by the names the service uses."""
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        if "waypoints" in changes:
            changes["waypoints"] = tuple(point.to_draft() for point in changes["waypoints"])
        return changes


UpdateT = TypeVar("UpdateT", bound=PartialUpdate)


def change_field(annotation: Any, description: str) -> tuple[Any, Any]:
    """An optional PATCH field, as `trip_update_model` takes it: `(type, field)`."""
    return annotation, Field(default=None, description=description)


# The PATCH fields of every version. A version's positions go between the two groups, where v1
# has always documented them.
_CHANGES_BEFORE_POSITIONS: dict[str, Any] = {
    "name": change_field(TripName | NotNull, f"New name. {NAME_RULE}"),
    "device_id": change_field(
        uuid.UUID | None, "Another of your devices; any other ID is a 422 (`unknown_device`)."
    ),
}
_CHANGES_AFTER_POSITIONS: dict[str, Any] = {
    "planned_start": change_field(PlannedTime | NotNull, "New planned start."),
    "planned_arrival": change_field(PlannedTime | NotNull, "New planned arrival."),
    "speed_limit_kmh": change_field(SpeedLimit | None, "New speed limit."),
    "corridor_m": change_field(CorridorWidth | None, "New corridor width (m)."),
    "status": change_field(TripStatus | NotNull, STATUS_DESCRIPTION),
    "waypoints": change_field(
        Waypoints | NotNull, "A new list of intermediate points; replaces the old one."
    ),
}


def trip_update_model(name: str, base: type[UpdateT], **positions: Any) -> type[UpdateT]:
    """A version's PATCH model `name`: `base` (its docstring, config and `to_changes`) with the
    fields every version shares and the version's `positions` (each a `change_field`)."""
    return create_model(
        name,
        __base__=base,
        __module__=base.__module__,
        __doc__=base.__doc__,
        **_CHANGES_BEFORE_POSITIONS,
        **positions,
        **_CHANGES_AFTER_POSITIONS,
    )


# --- Reading a trip ------------------------------------------------------------------------------


class TripPublicBase(BaseModel):
    """What every version shows of a trip, except its positions."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The trip's ID.")
    name: str = Field(description="What the trip is called.")
    status: TripStatus = Field(description="planned, active, completed or cancelled.")
    device_id: uuid.UUID | None = Field(description="The device expected to make the trip.")
    planned_start: datetime = Field(description="Planned start (UTC).")
    planned_arrival: datetime = Field(description="Planned arrival (UTC).")
    speed_limit_kmh: float | None = Field(description="Speed limit; null: no rule.")
    corridor_m: float | None = Field(description="Corridor width (m); null: no rule.")
    waypoints: list[WaypointPublic] = Field(description="Intermediate points, in order.")
    started_at: datetime | None = Field(description="When the trip became active.")
    ended_at: datetime | None = Field(description="When it was completed or cancelled.")
    last_seen_at: datetime | None = Field(description="Time of the latest telemetry.")
    distance_m: float = Field(description="Distance travelled so far (m).")
    eta: datetime | None = Field(
        description="Estimated arrival: the route left at the faster of the latest batch's "
        "pace and the trip's average; none in the trip's first minute or while parked."
    )
    created_at: datetime = Field(description="When the trip was created (UTC).")
    updated_at: datetime = Field(description="When it last changed (UTC).")


# --- Filters and statistics (the same in every version) ------------------------------------------


class TripFilters(BaseModel):
    """Filters of the trip list; they combine with AND."""

    status: list[TripStatus] = Field(
        default_factory=list,
        max_length=4,
        description="Only trips in these statuses; repeat for several (`status=planned&"
        "status=active`).",
    )
    device_id: uuid.UUID | None = Field(default=None, description="Only trips of this device.")
    planned_start_from: PlannedTime | None = Field(
        default=None,
        description="Only trips planned to start at or after this time (inclusive).",
        examples=["2026-12-01T00:00:00Z"],
    )
    planned_start_to: PlannedTime | None = Field(
        default=None,
        description="Only trips planned to start before this time (exclusive). With "
        "`planned_start_from`, it must be later than `planned_start_from`: an equal or earlier "
        "one is a 422.",
        examples=["2027-01-01T00:00:00Z"],
    )

    @model_validator(mode="after")
    def _range_in_order(self) -> TripFilters:
        start, end = self.planned_start_from, self.planned_start_to
        if start is not None and end is not None and end <= start:
            raise ValueError("planned_start_to must be later than planned_start_from")
        return self


class TripStatusCounts(BaseModel):
    """How many trips are in each status."""

    planned: int = Field(description="Trips not started yet.", examples=[3])
    active: int = Field(description="Trips under way.", examples=[1])
    completed: int = Field(description="Trips that arrived.", examples=[12])
    cancelled: int = Field(description="Trips called off.", examples=[2])


class TripStats(BaseModel):
    """A summary of your trips, cached for a minute and refreshed when any trip changes."""

    total: int = Field(description="Number of trips.", examples=[18])
    by_status: TripStatusCounts = Field(description="Counts per status.")
    total_distance_m: float = Field(
        description="Distance travelled over all trips (m).", examples=[481234.5]
    )
    next_planned_start: datetime | None = Field(
        description="The earliest future start among planned trips.",
        examples=["2026-12-01T08:00:00Z"],
    )
    computed_at: datetime = Field(
        description="When these figures were computed (they may be cached up to a minute).",
        examples=["2026-11-26T12:00:00Z"],
    )


# --- Bulk create: items in, per-item results out -------------------------------------------------


class BulkItemResult(BaseModel):
    """The outcome of one item of a bulk request (the trip field is per version)."""

    index: int = Field(description="Position of the item in the request, from 0.", examples=[0])
    status: int = Field(
        description="What this item alone would have answered: 201, 409 or 422.", examples=[201]
    )
    error: ErrorResponse | None = Field(
        description="Why the item failed, in the shared error shape; null on success."
    )


class BulkResult(BaseModel):
    """Per-item results of a bulk create (HTTP 207): each item succeeded or failed on its own.
    Each version adds `results`, its list of `BulkItemResult`s."""

    created: int = Field(description="Items created.", examples=[2])
    failed: int = Field(description="Items refused.", examples=[1])


BULK_SIZE = Field(min_length=1, max_length=MAX_BULK_ITEMS)


def bulk_items_schema(item_schema: str) -> WithJsonSchema:
    """The documented `items` of a bulk create. Each item is validated on its own (a bad one
    gets its own 422 result), so any JSON is accepted per item, and the schema says so; the
    first alternative documents what an item should be: `item_schema`, the single create."""
    return WithJsonSchema(
        {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BULK_ITEMS,
            "items": {"anyOf": [{"$ref": f"#/components/schemas/{item_schema}"}, {}]},
        }
    )


class BulkCreate(BaseModel):
    """Several trips to create at once. Each version documents `items` (`bulk_items_schema`)
    and names the single create model each item is validated with."""

    item_model: ClassVar[type[TripPlan]]
    items: list[Any]

    def drafts(self) -> list[TripDraft | AppError]:
        """Each item validated on its own: a draft, or the 422 that item alone would get."""
        parsed: list[TripDraft | AppError] = []
        for index, item in enumerate(self.items):
            try:
                parsed.append(self.item_model.model_validate(item).to_draft())
            except ValidationError as exc:
                parsed.append(
                    UnprocessableError(
                        details=[
                            {
                                "loc": ["body", "items", index, *err["loc"]],
                                "msg": err["msg"],
                                "type": err["type"],
                            }
                            for err in exc.errors()
                        ]
                    )
                )
        return parsed
