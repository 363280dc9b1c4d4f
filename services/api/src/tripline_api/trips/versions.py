"""The trips API versions: what sets each apart, as a table the trips routers are generated
from (`trips.router.trips_router`, `trip_files.router.trip_files_router`).

Everything not in the table (paths, operations, status codes, dependencies, the service calls)
is the same in every version. A new version is one more row, and a module of its models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute

from tripline_api.trips import schemas_v1, schemas_v2
from tripline_api.trips.deprecation import DEPRECATION_NOTE, DeprecatedV1Route
from tripline_api.trips.schemas import (
    BulkCreate,
    BulkResult,
    PartialUpdate,
    TripPlan,
    TripPublicBase,
)
from tripline_common.web import IdempotentRoute, Page


@dataclass(frozen=True)
class TripsVersion:
    """One trips version: its tag, route class and deprecation, its models, and the wording
    its operations were published with."""

    name: str
    """`v1`, `v2`: names the single-trip route (`get_trip_v1`), which `Location` points to."""
    operation_suffix: str
    """Appended to each operation's route name, hence to its OpenAPI operation ID (v1's have
    none, as published)."""
    tag: str
    route_class: type[APIRoute]
    deprecated: bool
    note: str | None
    """Appended to every operation's description (v1: the deprecation)."""
    create: type[TripPlan]
    replace: type[TripPlan]
    update: type[PartialUpdate]
    public: type[TripPublicBase]
    page: type[Page[Any]]
    bulk_create: type[BulkCreate]
    bulk_result: type[BulkResult]
    update_description: str
    delete_description: str

    def describe(self, description: str) -> str:
        """An operation's description in this version: with its note, if it has one."""
        return f"{description} {self.note}" if self.note else description

    def route_name(self, operation: str) -> str:
        """The route name of `operation` (`list_trips`) in this version."""
        return operation + self.operation_suffix


V1 = TripsVersion(
    name="v1",
    operation_suffix="",
    tag="trips",
    route_class=DeprecatedV1Route,
    deprecated=True,
    note=DEPRECATION_NOTE,
    create=schemas_v1.TripCreate,
    replace=schemas_v1.TripReplace,
    update=schemas_v1.TripUpdate,
    public=schemas_v1.TripPublic,
    page=schemas_v1.TripPage,
    bulk_create=schemas_v1.TripBulkCreate,
    bulk_result=schemas_v1.TripBulkResult,
    update_description="Changes only the fields sent; an empty body is a 422. `null` clears "
    "`device_id`, `speed_limit_kmh` or `corridor_m`. The rules are checked on the result "
    "(e.g. a new `planned_arrival` must still follow `planned_start`: else a 422).",
    delete_description="Deletes the trip and its waypoints: 204. Deleting is idempotent in "
    "effect (the trip stays gone), but a second DELETE answers 404, like any trip you do not "
    "have: answering 204 for every ID would hide a client's mistyped ID.",
)

V2 = TripsVersion(
    name="v2",
    operation_suffix="_v2",
    tag="trips-v2",
    route_class=IdempotentRoute,
    deprecated=False,
    note=None,
    create=schemas_v2.TripCreateV2,
    replace=schemas_v2.TripReplaceV2,
    update=schemas_v2.TripUpdateV2,
    public=schemas_v2.TripPublicV2,
    page=schemas_v2.TripPageV2,
    bulk_create=schemas_v2.TripBulkCreateV2,
    bulk_result=schemas_v2.TripBulkResultV2,
    update_description="Changes only the fields sent; an empty body is a 422. `origin` and "
    "`destination` are replaced whole (both coordinates). `null` clears `device_id`, "
    "`speed_limit_kmh` or `corridor_m`. The rules are checked on the result (e.g. a new "
    "`planned_arrival` must still follow `planned_start`: else a 422).",
    delete_description="Deletes the trip and its waypoints: 204. A second DELETE answers 404, "
    "like any trip you do not have (the trip stays gone either way).",
)
