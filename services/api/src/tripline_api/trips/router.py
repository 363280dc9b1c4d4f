"""`/v1/trips` endpoints (deprecated in favour of `/v2/trips`): declarations only; the work
happens in `trips.service`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from tripline_api.trips import service
from tripline_api.trips.deprecation import DEPRECATION_NOTE, DeprecatedV1Route
from tripline_api.trips.parameters import TripFiltersQuery, TripId
from tripline_api.trips.responses import (
    IDEMPOTENCY_CONFLICT,
    INVALID_LIST_QUERY,
    NOT_FOUND,
    STATUS_CONFLICT,
    UNAUTHORIZED,
)
from tripline_api.trips.schemas import (
    TripBulkCreate,
    TripBulkResult,
    TripCreate,
    TripPage,
    TripPublic,
    TripReplace,
    TripStats,
    TripUpdate,
)
from tripline_common.web import (
    CurrentUser,
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
    tags=["trips"],
    route_class=DeprecatedV1Route,
    deprecated=True,
    responses=UNAUTHORIZED,
)

TripPageParams = Annotated[PageParams, Depends(page_params(service.TRIP_SORT, TripPage))]


@router.get(
    "",
    response_model=TripPage,
    summary="List your trips",
    description="Your trips, a page at a time: `limit` + `offset`, or the opaque `cursor` "
    "(stable while trips change). Filter by status, device and planned start; sort on an "
    "allowlist; narrow each item with `fields`. `Link` has rel `next` / `prev`. "
    + DEPRECATION_NOTE,
    responses=INVALID_LIST_QUERY,
)
async def list_trips(
    user: CurrentUser, session: SessionDep, filters: TripFiltersQuery, page: TripPageParams
) -> TripPage:
    result = await service.list_trips(session=session, owner_id=user.id, filters=filters, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TripPublic,
    summary="Plan a trip",
    description="Creates a `planned` trip; `Location` points to it. Send an `Idempotency-Key` "
    "to make retries safe. " + DEPRECATION_NOTE,
    dependencies=[UserIdempotencyKey],
    responses={
        **IDEMPOTENCY_CONFLICT,
        201: {"description": "Created.", "headers": {"Location": {"description": "The trip."}}},
    },
)
async def create_trip(
    data: TripCreate,
    user: CurrentUser,
    session: SessionDep,
    redis: RedisDep,
    request: Request,
    response: Response,
) -> TripPublic:
    trip = await service.create_trip(
        session=session, redis=redis, owner_id=user.id, draft=data.to_draft()
    )
    response.headers["Location"] = str(request.url_for("get_trip_v1", trip_id=trip.id))
    return TripPublic.model_validate(trip)


@router.post(
    "/bulk",
    status_code=status.HTTP_207_MULTI_STATUS,
    response_model=TripBulkResult,
    summary="Plan several trips",
    description="Creates up to 100 trips. Always 207 Multi-Status when the request itself is "
    "well-formed: each item has its own `status` (201, 409 or 422) and either the trip or an "
    "error in the shared shape. Each item is validated and stored on its own (a savepoint "
    "each), so a bad item never sinks the others. Honours `Idempotency-Key`. " + DEPRECATION_NOTE,
    dependencies=[UserIdempotencyKey],
    responses=IDEMPOTENCY_CONFLICT,
)
async def create_trips_in_bulk(
    data: TripBulkCreate, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> TripBulkResult:
    outcomes = await service.create_trips(
        session=session, redis=redis, owner_id=user.id, drafts=data.drafts()
    )
    return TripBulkResult.of(outcomes, TripPublic)


@router.get(
    "/stats",
    response_model=TripStats,
    summary="Summarise your trips",
    description="Counts by status, distance travelled and the next planned start. Cached per "
    "user for up to a minute and refreshed as soon as any of your trips changes. "
    + DEPRECATION_NOTE,
)
async def get_trip_stats(user: CurrentUser, session: SessionDep, redis: RedisDep) -> TripStats:
    return await service.trip_stats(session=session, redis=redis, owner_id=user.id)


@router.get(
    "/{trip_id:uuid}",
    name="get_trip_v1",
    response_model=TripPublic,
    summary="Get a trip",
    description="One of your trips with its waypoints. " + DEPRECATION_NOTE,
    responses=NOT_FOUND,
)
async def get_trip(trip_id: TripId, claims: TokenClaims, request: Request) -> Response:
    # The hot read: the session is checked inside the trip's own query (one round trip), and
    # the pool and the response skip FastAPI's per-request extras (docs/performance.md).
    trip = await service.get_trip_for_session(pg=pg_pool(request), claims=claims, trip_id=trip_id)
    return model_response(TripPublic.model_validate(trip))


@router.put(
    "/{trip_id:uuid}",
    response_model=TripPublic,
    summary="Replace a trip",
    description="Sets every writable field; omitted optional fields are cleared and the "
    "waypoint list is replaced. Idempotent: the same PUT again changes nothing. Status moves "
    "follow planned -> active -> completed, or cancelled; others are a 409. " + DEPRECATION_NOTE,
    responses={**NOT_FOUND, **STATUS_CONFLICT},
)
async def replace_trip(
    trip_id: TripId, data: TripReplace, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> TripPublic:
    trip = await service.replace_trip(
        session=session,
        redis=redis,
        owner_id=user.id,
        trip_id=trip_id,
        draft=data.to_draft(),
        status=data.status,
    )
    return TripPublic.model_validate(trip)


@router.patch(
    "/{trip_id:uuid}",
    response_model=TripPublic,
    summary="Change some fields of a trip",
    description="Changes only the fields sent; an empty body is a 422. `null` clears "
    "`device_id`, `speed_limit_kmh` or `corridor_m`. The rules are checked on the result "
    "(e.g. a new `planned_arrival` must still follow `planned_start`). " + DEPRECATION_NOTE,
    responses={**NOT_FOUND, **STATUS_CONFLICT},
)
async def update_trip(
    trip_id: TripId, data: TripUpdate, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> TripPublic:
    trip = await service.update_trip(
        session=session, redis=redis, owner_id=user.id, trip_id=trip_id, changes=data.to_changes()
    )
    return TripPublic.model_validate(trip)


@router.delete(
    "/{trip_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    response_class=Response,
    summary="Delete a trip",
    description="Deletes the trip and its waypoints: 204. Deleting is idempotent in effect (the "
    "trip stays gone), but a second DELETE answers 404, like any trip you do not have: "
    "answering 204 for every ID would hide a client's mistyped ID. " + DEPRECATION_NOTE,
    responses=NOT_FOUND,
)
async def delete_trip(
    trip_id: TripId, user: CurrentUser, session: SessionDep, redis: RedisDep
) -> None:
    await service.delete_trip(session=session, redis=redis, owner_id=user.id, trip_id=trip_id)
