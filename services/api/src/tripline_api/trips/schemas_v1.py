"""Request and response models of `/v1/trips` (deprecated): positions as flat `*_lat` / `*_lon`
fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import ConfigDict, Field

from tripline_api.trips.drafts import TripDraft
from tripline_api.trips.fields import (
    MAX_BULK_ITEMS,
    STATUS_DESCRIPTION,
    Latitude,
    Longitude,
    NotNull,
)
from tripline_api.trips.schemas import (
    BULK_SIZE,
    BulkCreate,
    BulkItemResult,
    BulkResult,
    PartialUpdate,
    TripPlan,
    TripPublicBase,
    bulk_items_schema,
    change_field,
    trip_update_model,
)
from tripline_common.data.models import TripStatus
from tripline_common.web import Page, selectable

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


class TripReplace(TripWrite):
    """The full new state of a trip (PUT): omitted optional fields are cleared."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{**_CREATE_EXAMPLE, "status": "planned"}]},
    )

    status: TripStatus = Field(description=STATUS_DESCRIPTION, examples=["planned"])


class _TripUpdate(PartialUpdate):
    """A partial update (PATCH): only the fields sent change. At least one field is required;
    `null` clears `device_id`, `speed_limit_kmh` or `corridor_m`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"speed_limit_kmh": 100}, {"status": "cancelled"}],
        },
    )


TripUpdate = trip_update_model(
    "TripUpdate",
    _TripUpdate,
    origin_lat=change_field(Latitude | NotNull, "Latitude of the start."),
    origin_lon=change_field(Longitude | NotNull, "Longitude of the start."),
    destination_lat=change_field(Latitude | NotNull, "Latitude of the end."),
    destination_lon=change_field(Longitude | NotNull, "Longitude of the end."),
)

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


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    TripListItem = TripPublic
else:
    TripListItem = selectable(TripPublic, name="TripListItem")


class TripPage(Page[TripListItem]):
    """A page of trips (v1)."""


class TripBulkItemResult(BulkItemResult):
    """The outcome of one item of `POST /v1/trips/bulk`."""

    trip: TripPublic | None = Field(description="The created trip, when `status` is 201.")


class TripBulkResult(BulkResult):
    """Per-item results of `POST /v1/trips/bulk` (HTTP 207)."""

    results: list[TripBulkItemResult] = Field(description="One result per item, in order.")


TripBulkItems = Annotated[list[Any], BULK_SIZE, bulk_items_schema("TripCreate")]


class TripBulkCreate(BulkCreate):
    """Several trips to create at once (v1 item shape)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"items": [_CREATE_EXAMPLE]}]}
    )

    item_model = TripCreate
    items: TripBulkItems = Field(
        description=f"1 to {MAX_BULK_ITEMS} trips, each as in `POST /v1/trips`. Each is "
        "validated and stored on its own: a bad item fails alone."
    )
