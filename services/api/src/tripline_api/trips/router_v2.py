"""`/v2/trips` endpoints: declarations only. Same operations and service as v1; the models
differ (positions as `{lat, lon}` objects, see `schemas_v2.py`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from tripline_api.trips import service
from tripline_api.trips.parameters import TripFiltersQuery, TripId
from tripline_api.trips.responses import (
    IDEMPOTENCY_CONFLICT,
    INVALID_LIST_QUERY,
    NOT_FOUND,
    STATUS_CONFLICT,
    UNAUTHORIZED,
)
from tripline_api.trips.schemas import TripStats
from tripline_api.trips.schemas_v2 import (
    TripBulkCreateV2,
    TripBulkResultV2,
    TripCreateV2,
    TripPageV2,
    TripPublicV2,
    TripReplaceV2,
    TripUpdateV2,
)
from tripline_common.web import (
    CurrentUser,
    IdempotentRoute,
    PageParams,
    RedisDep,
    SessionDep,
    TokenClaims,
    UserIdempotencyKey,
    model_response,
    page_params,
    pg_pool,
)

router = APIRouter(
    prefix="/trips",
    tags=["trips-v2"],
    route_class=IdempotentRoute,
    responses=UNAUTHORIZED,
)

TripPageParamsV2 = Annotated[PageParams, Depends(page_params(service.TRIP_SORT, TripPageV2))]


@router.get(
    "",
    response_model=TripPageV2,
    summary="List your trips",
    description="Your trips, a page at a time: `limit` + `offset`, or the opaque `cursor` "
    "(stable while trips change). Filter by status, device and planned start; sort on an "
    "allowlist; narrow each item with `fields`. `Link` has rel `next` / `prev`.",
    responses=INVALID_LIST_QUERY,
)
async def list_trips_v2(
    user: CurrentUser, session: SessionDep, filters: TripFiltersQuery, page: TripPageParamsV2
) -> TripPageV2:
    result = await service.list_trips(session=session, owner_id=user.id, filters=filters, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TripPublicV2,
    summary="Plan a trip",
    description="Creates a `planned` trip; `Location` points to it. Send an `Idempotency-Key` "
    "to make retries safe.",
    dependencies=[UserIdempotencyKey],
    responses={
        **IDEMPOTENCY_CONFLICT,
        201: {"description": "Created.", "headers": {"Location": {"description": "The trip."}}},
    },
)
async def create_trip_v2(
    data: TripCreateV2,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    request: Request,
    response: Response,
) -> TripPublicV2:
    trip = await service.create_trip(
        session=session, redis=redis, owner_id=user.id, draft=data.to_draft()
    )
    response.headers["Location"] = str(request.url_for("get_trip_v2", trip_id=trip.id))
    return TripPublicV2.model_validate(trip)


@router.post(
    "/bulk",
    status_code=status.HTTP_207_MULTI_STATUS,
    response_model=TripBulkResultV2,
    summary="Plan several trips",
    description="Creates up to 100 trips. Always 207 Multi-Status when the request itself is "
    "well-formed: each item has its own `status` (201, 409 or 422) and either the trip or an "
    "error in the shared shape. Each item is validated and stored on its own (a savepoint "
    "each), so a bad item never sinks the others. Honours `Idempotency-Key`.",
    dependencies=[UserIdempotencyKey],
    responses=IDEMPOTENCY_CONFLICT,
)
async def create_trips_in_bulk_v2(
    data: TripBulkCreateV2, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> TripBulkResultV2:
    outcomes = await service.create_trips(
        session=session, redis=redis, owner_id=user.id, drafts=data.drafts()
    )
    return TripBulkResultV2.of(outcomes, TripPublicV2)


@router.get(
    "/stats",
    response_model=TripStats,
    summary="Summarise your trips",
    description="Counts by status, distance travelled and the next planned start. Cached per "
    "user for up to a minute and refreshed as soon as any of your trips changes.",
)
async def get_trip_stats_v2(user: CurrentUser, session: SessionDep, redis: RedisDep) -> TripStats:
    return await service.trip_stats(session=session, redis=redis, owner_id=user.id)


@router.get(
    "/{trip_id:uuid}",
    name="get_trip_v2",
    response_model=TripPublicV2,
    summary="Get a trip",
    description="One of your trips with its waypoints.",
    responses=NOT_FOUND,
)
async def get_trip_v2(trip_id: TripId, claims: TokenClaims, request: Request) -> Response:
    # The hot read: the session is checked inside the trip's own query (one round trip), and
    # the pool and the response skip FastAPI's per-request extras (docs/performance.md).
    trip = await service.get_trip_for_session(pg=pg_pool(request), claims=claims, trip_id=trip_id)
    return model_response(TripPublicV2.model_validate(trip))


@router.put(
    "/{trip_id:uuid}",
    response_model=TripPublicV2,
    summary="Replace a trip",
    description="Sets every writable field; omitted optional fields are cleared and the "
    "waypoint list is replaced. Idempotent: the same PUT again changes nothing. Status moves "
    "follow planned -> active -> completed, or cancelled; others are a 409.",
    responses={**NOT_FOUND, **STATUS_CONFLICT},
)
async def replace_trip_v2(
    trip_id: TripId, data: TripReplaceV2, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> TripPublicV2:
    trip = await service.replace_trip(
        session=session,
        redis=redis,
        owner_id=user.id,
        trip_id=trip_id,
        draft=data.to_draft(),
        status=data.status,
    )
    return TripPublicV2.model_validate(trip)


@router.patch(
    "/{trip_id:uuid}",
    response_model=TripPublicV2,
    summary="Change some fields of a trip",
    description="Changes only the fields sent; an empty body is a 422. `origin` and "
    "`destination` are replaced whole (both coordinates). `null` clears `device_id`, "
    "`speed_limit_kmh` or `corridor_m`. The rules are checked on the result.",
    responses={**NOT_FOUND, **STATUS_CONFLICT},
)
async def update_trip_v2(
    trip_id: TripId, data: TripUpdateV2, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> TripPublicV2:
    trip = await service.update_trip(
        session=session, redis=redis, owner_id=user.id, trip_id=trip_id, changes=data.to_changes()
    )
    return TripPublicV2.model_validate(trip)


@router.delete(
    "/{trip_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    response_class=Response,
    summary="Delete a trip",
    description="Deletes the trip and its waypoints: 204. A second DELETE answers 404, like any "
    "trip you do not have (the trip stays gone either way).",
    responses=NOT_FOUND,
)
async def delete_trip_v2(
    trip_id: TripId, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> None:
    await service.delete_trip(session=session, redis=redis, owner_id=user.id, trip_id=trip_id)
