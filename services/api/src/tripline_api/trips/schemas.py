"""Request and response models of the trips resource (v1), the field types v2 shares, and the
version-neutral models (filters, statistics, bulk results).

Input models are strict: unknown fields are refused, numbers must be JSON numbers (not `true`
or `"5"`), NaN and infinities are refused, times need a UTC offset and a plausible year. Output
models only mirror what the database guarantees, so a stored row always serialises.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from tripline_api.trips.drafts import TripDraft, WaypointDraft
from tripline_common.data import WaypointName, clean_name
from tripline_common.data.models import TripStatus
from tripline_common.platform import AppError, ErrorResponse, UnprocessableError, get_request_id
from tripline_common.web import Page, selectable

if TYPE_CHECKING:
    from tripline_api.trips.service import BulkOutcome

MAX_WAYPOINTS = 50
MAX_BULK_ITEMS = 100
MAX_SPEED_LIMIT_KMH = 500
MAX_CORRIDOR_M = 100_000
EARLIEST_YEAR, LATEST_YEAR = 2000, 2099

# --- Field types, shared by v1 and v2 ------------------------------------------------------------


def _plausible_year(value: datetime) -> datetime:
    # Also keeps far-away years (0001-01-01T00:00+05:00) from overflowing when made UTC.
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be in the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return value


def _text_times_only(value: object) -> object:
    # Lax mode would read a bare number as seconds since 1970: a client bug, not a time.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 date-time string with an offset")
    return value


Latitude = Annotated[float, Field(strict=True, ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Field(strict=True, ge=-180, le=180, allow_inf_nan=False)]
TripName = Annotated[
    str,
    Field(min_length=1, max_length=200),
    AfterValidator(clean_name),
]
PlannedTime = Annotated[
    AwareDatetime,
    BeforeValidator(_text_times_only),
    AfterValidator(_plausible_year),
    # The year rule, stated in the schema too (a pattern is all JSON Schema has for it).
    Field(json_schema_extra={"pattern": r"^20[0-9]{2}-"}),
]
SpeedLimit = Annotated[float, Field(strict=True, gt=0, le=MAX_SPEED_LIMIT_KMH, allow_inf_nan=False)]
CorridorWidth = Annotated[float, Field(strict=True, gt=0, le=MAX_CORRIDOR_M, allow_inf_nan=False)]

INPUT_CONFIG = ConfigDict(extra="forbid")

NotNull = SkipJsonSchema[None]
"""For PATCH fields that may be left out but not set to null: `name: TripName | NotNull = None`
documents a string only, and `PartialUpdate` refuses an explicit null with a 422."""


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
        description="Optional label, e.g. a depot name; no control characters, and not "
        "starting with =, +, - or @ (a spreadsheet formula).",
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


# --- v1 trips ------------------------------------------------------------------------------------

_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "Berlin to Hamburg",
    "device_id": "5b6a1d7e-2f4c-4e1b-9a3d-0c8e7f6a5b4c",
    "origin_lat": 52.52,
    "origin_lon": 13.405,
    "destination_lat": 53.551,
    "destination_lon": 9.993,
    "planned_start": "2026-12-01T08:00:00Z",
    "planned_arrival": "2026-12-01T11:30:00Z",
    "speed_limit_kmh": 130,
    "corridor_m": 2000,
    "waypoints": [{"lat": 53.0, "lon": 11.0, "name": "Depot 7"}],
}


class TripPlan(BaseModel):
    """What every version's trip input has in common: name, device, schedule, rules and
    waypoints (the coordinates of origin and destination are where versions differ)."""

    model_config = INPUT_CONFIG

    name: TripName = Field(description="What the trip is called.", examples=["Berlin to Hamburg"])
    device_id: uuid.UUID | None = Field(
        default=None,
        description="One of your devices, expected to make the trip; null: not assigned yet.",
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


class TripWrite(TripPlan):
    """The plan of a trip as a v1 client writes it in full (create and replace)."""

    origin_lat: Latitude = Field(description="Latitude of the start.", examples=[52.52])
    origin_lon: Longitude = Field(description="Longitude of the start.", examples=[13.405])
    destination_lat: Latitude = Field(description="Latitude of the end.", examples=[53.551])
    destination_lon: Longitude = Field(description="Longitude of the end.", examples=[9.993])

    def to_draft(self) -> TripDraft:
        """The version-neutral plan the service works with."""
        return self._draft(
            (self.origin_lat, self.origin_lon), (self.destination_lat, self.destination_lon)
        )


class TripCreate(TripWrite):
    """A new trip. It starts `planned`; the server assigns id and timestamps."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CREATE_EXAMPLE]})


STATUS_DESCRIPTION = (
    "planned -> active -> completed, or cancelled before completion. Completed and cancelled "
    "are final; any other move is a 409."
)


class TripReplace(TripWrite):
    """The full new state of a trip (PUT): omitted optional fields are cleared."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_CREATE_EXAMPLE, "status": "planned"}]},
    )

    status: TripStatus = Field(description=STATUS_DESCRIPTION, examples=["planned"])


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

    def _changes(self) -> dict[str, Any]:
        changes = {name: getattr(self, name) for name in self.model_fields_set}
        if "waypoints" in changes:
            changes["waypoints"] = tuple(point.to_draft() for point in changes["waypoints"])
        return changes


class TripUpdate(PartialUpdate):
    """A partial update (PATCH): only the fields sent change. At least one field is required;
    `null` clears `device_id`, `speed_limit_kmh` or `corridor_m`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"speed_limit_kmh": 100}, {"status": "cancelled"}],
        },
    )

    name: TripName | NotNull = Field(default=None, description="New name.")
    device_id: uuid.UUID | None = Field(default=None, description="Another of your devices.")
    origin_lat: Latitude | NotNull = Field(default=None, description="Latitude of the start.")
    origin_lon: Longitude | NotNull = Field(default=None, description="Longitude of the start.")
    destination_lat: Latitude | NotNull = Field(default=None, description="Latitude of the end.")
    destination_lon: Longitude | NotNull = Field(default=None, description="Longitude of the end.")
    planned_start: PlannedTime | NotNull = Field(default=None, description="New planned start.")
    planned_arrival: PlannedTime | NotNull = Field(default=None, description="New planned arrival.")
    speed_limit_kmh: SpeedLimit | None = Field(default=None, description="New speed limit.")
    corridor_m: CorridorWidth | None = Field(default=None, description="New corridor width (m).")
    status: TripStatus | NotNull = Field(default=None, description=STATUS_DESCRIPTION)
    waypoints: Waypoints | NotNull = Field(
        default=None, description="A new list of intermediate points; replaces the old one."
    )

    def to_changes(self) -> dict[str, Any]:
        """The changed fields, by the names the service uses."""
        return self._changes()


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
    eta: datetime | None = Field(description="Estimated arrival, from recent progress.")
    created_at: datetime = Field(description="When the trip was created (UTC).")
    updated_at: datetime = Field(description="When it last changed (UTC).")


PUBLIC_EXAMPLE: dict[str, Any] = {
    **{key: value for key, value in _CREATE_EXAMPLE.items() if key != "waypoints"},
    "id": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "status": "planned",
    "waypoints": [{"seq": 0, "lat": 53.0, "lon": 11.0, "name": "Depot 7"}],
    "started_at": None,
    "ended_at": None,
    "last_lat": None,
    "last_lon": None,
    "last_seen_at": None,
    "distance_m": 0.0,
    "eta": None,
    "created_at": "2026-11-26T12:00:00Z",
    "updated_at": "2026-11-26T12:00:00Z",
}


class TripPublic(TripPublicBase):
    """A trip as v1 shows it: coordinates as flat `*_lat` / `*_lon` pairs."""

    model_config = ConfigDict(json_schema_extra={"examples": [PUBLIC_EXAMPLE]})

    origin_lat: float = Field(description="Latitude of the start.")
    origin_lon: float = Field(description="Longitude of the start.")
    destination_lat: float = Field(description="Latitude of the end.")
    destination_lon: float = Field(description="Longitude of the end.")
    last_lat: float | None = Field(description="Latitude of the latest telemetry.")
    last_lon: float | None = Field(description="Longitude of the latest telemetry.")


TripListItem = selectable(TripPublic, name="TripListItem")


class TripPage(Page[TripListItem]):  # type: ignore[misc]
    """A page of trips (v1)."""


# --- Filters, statistics and bulk results (the same in every version) --------------------------


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
        description="Only trips planned to start before this time (exclusive).",
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
    """Per-item results of a bulk create (HTTP 207): each item succeeded or failed on its own."""

    created: int = Field(description="Items created.", examples=[2])
    failed: int = Field(description="Items refused.", examples=[1])

    @classmethod
    def of(cls, outcomes: Sequence[BulkOutcome], item_model: type[BaseModel]) -> Self:
        """The response for the service's per-item outcomes, trips shown as `item_model`."""
        results = [
            {
                "index": outcome.index,
                "status": 201 if outcome.error is None else outcome.error.status_code,
                "trip": item_model.model_validate(outcome.trip) if outcome.trip else None,
                "error": _error_body(outcome.error) if outcome.error else None,
            }
            for outcome in outcomes
        ]
        failed = sum(1 for outcome in outcomes if outcome.error is not None)
        return cls.model_validate(
            {"created": len(outcomes) - failed, "failed": failed, "results": results}
        )


def _error_body(error: AppError) -> ErrorResponse:
    return ErrorResponse(
        code=error.code, message=error.message, details=error.details, request_id=get_request_id()
    )


class TripBulkItemResult(BulkItemResult):
    """The outcome of one item of `POST /v1/trips/bulk`."""

    trip: TripPublic | None = Field(description="The created trip, when `status` is 201.")


class TripBulkResult(BulkResult):
    """Per-item results of `POST /v1/trips/bulk` (HTTP 207)."""

    results: list[TripBulkItemResult] = Field(description="One result per item, in order.")


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


def parse_items(items: list[Any], model: type[BaseModel]) -> list[TripDraft | AppError]:
    """Validate each bulk item on its own: a draft, or the 422 that item alone would get."""
    parsed: list[TripDraft | AppError] = []
    for index, item in enumerate(items):
        try:
            parsed.append(model.model_validate(item).to_draft())  # type: ignore[attr-defined]
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


TripBulkItems = Annotated[list[Any], BULK_SIZE, bulk_items_schema("TripCreate")]


class TripBulkCreate(BaseModel):
    """Several trips to create at once (v1 item shape)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"items": [_CREATE_EXAMPLE]}]}
    )

    items: TripBulkItems = Field(
        description=f"1 to {MAX_BULK_ITEMS} trips, each as in `POST /v1/trips`. Each is "
        "validated and stored on its own: a bad item fails alone."
    )

    def drafts(self) -> list[TripDraft | AppError]:
        return parse_items(self.items, TripCreate)
