"""Request and response models of `/v2/trips`; `BREAKING_CHANGE` says how they differ from v1."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tripline_api.trips.drafts import TripDraft
from tripline_api.trips.fields import STATUS_DESCRIPTION, Latitude, Longitude, NotNull
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
from tripline_api.trips.schemas_v1 import PUBLIC_EXAMPLE as V1_PUBLIC_EXAMPLE
from tripline_common.data.models import Trip, TripStatus
from tripline_common.web import Page, selectable

BREAKING_CHANGE = """\
**The one breaking change from v1:** a position is a `{lat, lon}` object (`origin`,
`destination`, `last_position`) instead of two flat fields (`origin_lat` and `origin_lon`, ...).
In requests too: `{"origin": {"lat": 52.52, "lon": 13.405}}`.

**Why:** a position is one value. With flat fields a PATCH of `origin_lat` alone silently moves
the origin somewhere else, half of a pair can be null while the other is not, and every client
re-assembles the pair. As an object it is validated, replaced and cleared as a unit, and maps
directly onto the `{lat, lon}` types of map libraries.

**Unchanged:** the operations, status codes, errors, pagination, filters, sorting, `fields`
(with the v2 names), `Idempotency-Key`, waypoints and statistics.
"""


class Coordinates(BaseModel):
    """A position: latitude and longitude in WGS 84 degrees."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"lat": 52.52, "lon": 13.405}]}
    )

    lat: Latitude = Field(description="Latitude, -90 to 90.", examples=[52.52])
    lon: Longitude = Field(description="Longitude, -180 to 180.", examples=[13.405])


_CREATE_EXAMPLE: dict[str, Any] = {
    "name": "Berlin to Hamburg",
    "device_id": "5b6a1d7e-2f4c-4e1b-9a3d-0c8e7f6a5b4c",
    "origin": {"lat": 52.52, "lon": 13.405},
    "destination": {"lat": 53.551, "lon": 9.993},
    "planned_start": "2026-12-01T08:00:00Z",
    "planned_arrival": "2026-12-01T11:30:00Z",
    "speed_limit_kmh": 130,
    "corridor_m": 2000,
    "waypoints": [{"lat": 53.0, "lon": 11.0, "name": "Depot 7"}],
}


class TripWriteV2(TripPlan):
    """The plan of a trip as a v2 client writes it in full (create and replace)."""

    origin: Coordinates = Field(description="Where the trip starts.")
    destination: Coordinates = Field(description="Where the trip ends.")

    def to_draft(self) -> TripDraft:
        """The version-neutral plan the service works with."""
        return self._draft(
            (self.origin.lat, self.origin.lon), (self.destination.lat, self.destination.lon)
        )


class TripCreateV2(TripWriteV2):
    """A new trip. It starts `planned`; the server assigns id and timestamps."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CREATE_EXAMPLE]})


class TripReplaceV2(TripWriteV2):
    """The full new state of a trip (PUT): omitted optional fields are cleared."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{**_CREATE_EXAMPLE, "status": "planned"}]}
    )

    status: TripStatus = Field(description=STATUS_DESCRIPTION, examples=["planned"])


class _TripUpdateV2(PartialUpdate):
    """A partial update (PATCH): only the fields sent change; `origin` and `destination` are
    replaced whole. At least one field is required."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"origin": {"lat": 52.5, "lon": 13.4}}],
        },
    )

    def to_changes(self) -> dict[str, Any]:
        """The changed fields, by the names the service uses (coordinates flattened)."""
        changes = super().to_changes()
        for name in ("origin", "destination"):
            if name in changes:
                position = changes.pop(name)
                changes[f"{name}_lat"], changes[f"{name}_lon"] = position.lat, position.lon
        return changes


TripUpdateV2 = trip_update_model(
    "TripUpdateV2",
    _TripUpdateV2,
    origin=change_field(Coordinates | NotNull, "New start (both coordinates)."),
    destination=change_field(Coordinates | NotNull, "New end."),
)


class TripPublicV2(TripPublicBase):
    """A trip as v2 shows it: positions as `{lat, lon}` objects."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **{
                        k: v
                        for k, v in V1_PUBLIC_EXAMPLE.items()
                        if not k.endswith(("_lat", "_lon"))
                    },
                    "origin": _CREATE_EXAMPLE["origin"],
                    "destination": _CREATE_EXAMPLE["destination"],
                    "last_position": None,
                }
            ]
        }
    )

    origin: Coordinates = Field(description="Where the trip starts.")
    destination: Coordinates = Field(description="Where the trip ends.")
    last_position: Coordinates | None = Field(description="Position of the latest telemetry.")

    @model_validator(mode="before")
    @classmethod
    def _from_stored_trip(cls, data: Any) -> Any:
        # From a stored trip (an ORM object, or a row from the hot read path): the common
        # fields as they are, the coordinate pairs as objects.
        if isinstance(data, Trip):
            get: Callable[[str], Any] = partial(getattr, data)
        elif isinstance(data, Mapping) and "origin_lat" in data:
            get = data.__getitem__
        else:
            return data
        values = {name: get(name) for name in TripPublicBase.model_fields}
        for position in ("origin", "destination"):
            values[position] = {"lat": get(f"{position}_lat"), "lon": get(f"{position}_lon")}
        last_lat, last_lon = get("last_lat"), get("last_lon")
        values["last_position"] = (
            None if last_lat is None or last_lon is None else {"lat": last_lat, "lon": last_lon}
        )
        return values


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    TripListItemV2 = TripPublicV2
else:
    TripListItemV2 = selectable(TripPublicV2, name="TripListItemV2")


class TripPageV2(Page[TripListItemV2]):
    """A page of trips (v2)."""


TripBulkItemsV2 = Annotated[list[Any], BULK_SIZE, bulk_items_schema("TripCreateV2")]


class TripBulkCreateV2(BulkCreate):
    """Several trips to create at once (v2 item shape)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"items": [_CREATE_EXAMPLE]}]}
    )

    item_model = TripCreateV2
    items: TripBulkItemsV2 = Field(
        description="1 to 100 trips, each as in `POST /v2/trips`. Each is validated and stored "
        "on its own: a bad item fails alone.",
    )


class TripBulkItemResultV2(BulkItemResult):
    """The outcome of one item of `POST /v2/trips/bulk`."""

    trip: TripPublicV2 | None = Field(description="The created trip, when `status` is 201.")


class TripBulkResultV2(BulkResult):
    """Per-item results of `POST /v2/trips/bulk` (HTTP 207)."""

    results: list[TripBulkItemResultV2] = Field(description="One result per item, in order.")
