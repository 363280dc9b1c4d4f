"""`/v1/trips` (deprecated) and `/v2/trips` endpoints, generated from one router factory and the
version table (`trips.versions`): declarations, and how a bulk create's outcomes are shown; the
work happens in `trips.service`."""

# No `from __future__ import annotations`: the handlers' parameter types are the version's
# models, which FastAPI must see as objects (a string annotation naming a local of
# `trips_router` could not be resolved). A type checker cannot follow them: hence the ignores.

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from tripline_api.responses import (
    IDEMPOTENCY_CONFLICT,
    INVALID_LIST_QUERY,
    UNAUTHORIZED,
    documented_error,
    not_found,
)
from tripline_api.trips import service
from tripline_api.trips.parameters import TripFiltersQuery, TripId
from tripline_api.trips.schemas import BulkResult, TripPublicBase, TripStats
from tripline_api.trips.versions import V1, V2, TripsVersion
from tripline_common.platform import ErrorResponse
from tripline_common.web import (
    DATABASE_RAISE_SITE,
    CurrentUser,
    PageParams,
    RedisDep,
    SessionDep,
    TokenClaims,
    UserIdempotencyKey,
    links,
    model_response,
    page_params,
    pg_pool,
)

NOT_FOUND = not_found("trip")
STATUS_CONFLICT = documented_error(
    409,
    "The status move is not allowed (`invalid_status_transition`), or the device already has an "
    "active trip.",
)


def trips_router(version: TripsVersion) -> APIRouter:
    """The trip operations of `version`, to be mounted under its prefix (`/v1`, `/v2`)."""
    router = APIRouter(
        prefix="/trips",
        tags=[version.tag],
        route_class=version.route_class,
        deprecated=version.deprecated or None,
        responses=UNAUTHORIZED,
    )
    trip_route = f"get_trip_{version.name}"
    TripPageParams = Annotated[  # noqa: N806 - a type alias, named like the module-level ones
        PageParams, Depends(page_params(service.TRIP_SORT, version.page))
    ]

    @router.get(
        "",
        name=version.route_name("list_trips"),
        response_model=version.page,
        summary="List your trips",
        description=version.describe(
            "Your trips, a page at a time: `limit` + `offset`, or the opaque `cursor` (stable "
            "while trips change). Filter by status, device and planned start; sort on an "
            "allowlist; narrow each item with `fields`. `Link` has rel `next` / `prev`."
        ),
        responses=INVALID_LIST_QUERY,
    )
    async def list_trips(
        user: CurrentUser,
        session: SessionDep,
        filters: TripFiltersQuery,
        page: TripPageParams,
    ) -> Any:  # the version's page model, made at run time (`response_model`)
        result = await service.list_trips(
            session=session, owner_id=user.id, filters=filters, page=page
        )
        return page.respond(result)

    @router.post(
        "",
        name=version.route_name("create_trip"),
        status_code=status.HTTP_201_CREATED,
        response_model=version.public,
        summary="Plan a trip",
        description=version.describe(
            "Creates a `planned` trip; `Location` points to it. Send an `Idempotency-Key` to "
            "make retries safe."
        ),
        dependencies=[UserIdempotencyKey],
        responses={
            **IDEMPOTENCY_CONFLICT,
            201: {
                "description": "Created.",
                "headers": {"Location": {"description": "The trip."}},
                "links": links(
                    "trip_id",
                    "$response.body#/id",
                    trip_route,
                    *map(version.route_name, ("replace_trip", "update_trip", "delete_trip")),
                ),
            },
        },
    )
    async def create_trip(
        data: version.create,  # type: ignore[name-defined]
        user: CurrentUser,
        session: SessionDep,
        redis: RedisDep,
        request: Request,
        response: Response,
    ) -> TripPublicBase:
        trip = await service.create_trip(
            session=session, redis=redis, owner_id=user.id, draft=data.to_draft()
        )
        response.headers["Location"] = str(request.url_for(trip_route, trip_id=trip.id))
        return version.public.model_validate(trip)

    @router.post(
        "/bulk",
        name=version.route_name("create_trips_in_bulk"),
        status_code=status.HTTP_207_MULTI_STATUS,
        response_model=version.bulk_result,
        summary="Plan several trips",
        description=version.describe(
            "Creates up to 100 trips. Always 207 Multi-Status when the request itself is "
            "well-formed: each item has its own `status` (201, 409 or 422) and either the trip "
            "or an error in the shared shape. Each item is validated and stored on its own (a "
            "savepoint each), so a bad item never sinks the others. Honours `Idempotency-Key`."
        ),
        dependencies=[UserIdempotencyKey],
        responses=IDEMPOTENCY_CONFLICT,
    )
    async def create_trips_in_bulk(
        data: version.bulk_create,  # type: ignore[name-defined]
        user: CurrentUser,
        session: SessionDep,
        redis: RedisDep,
    ) -> BulkResult:
        outcomes = await service.create_trips(
            session=session, redis=redis, owner_id=user.id, drafts=data.drafts()
        )
        return _bulk_result(version, outcomes)

    @router.get(
        "/stats",
        name=version.route_name("get_trip_stats"),
        response_model=TripStats,
        summary="Summarise your trips",
        description=version.describe(
            "Counts by status, distance travelled and the next planned start. Cached per user "
            "for up to a minute and refreshed as soon as any of your trips changes."
        ),
    )
    async def get_trip_stats(user: CurrentUser, session: SessionDep, redis: RedisDep) -> TripStats:
        return await service.trip_stats(session=session, redis=redis, owner_id=user.id)

    @router.get(
        "/{trip_id:uuid}",
        name=trip_route,
        response_model=version.public,
        summary="Get a trip",
        description=version.describe("One of your trips with its waypoints."),
        # The pool is taken without a dependency (the hot read), so its 503 is declared here.
        responses={**NOT_FOUND, **DATABASE_RAISE_SITE.responses},
    )
    async def get_trip(trip_id: TripId, claims: TokenClaims, request: Request) -> Response:
        # The hot read: the session is checked inside the trip's own query (one round trip),
        # and the pool and the response skip FastAPI's per-request extras
        # (docs/performance.md).
        trip = await service.get_trip_for_session(
            pg=pg_pool(request), claims=claims, trip_id=trip_id
        )
        return model_response(version.public.model_validate(trip))

    @router.put(
        "/{trip_id:uuid}",
        name=version.route_name("replace_trip"),
        response_model=version.public,
        summary="Replace a trip",
        description=version.describe(
            "Sets every writable field; omitted optional fields are cleared and the waypoint "
            "list is replaced. Idempotent: the same PUT again changes nothing. Status moves "
            "follow planned -> active -> completed, or cancelled; others are a 409."
        ),
        responses={**NOT_FOUND, **STATUS_CONFLICT},
    )
    async def replace_trip(
        trip_id: TripId,
        data: version.replace,  # type: ignore[name-defined]
        user: CurrentUser,
        session: SessionDep,
        redis: RedisDep,
    ) -> TripPublicBase:
        trip = await service.replace_trip(
            session=session,
            redis=redis,
            owner_id=user.id,
            trip_id=trip_id,
            draft=data.to_draft(),
            status=data.status,
        )
        return version.public.model_validate(trip)

    @router.patch(
        "/{trip_id:uuid}",
        name=version.route_name("update_trip"),
        response_model=version.public,
        summary="Change some fields of a trip",
        description=version.describe(version.update_description),
        responses={**NOT_FOUND, **STATUS_CONFLICT},
    )
    async def update_trip(
        trip_id: TripId,
        data: version.update,  # type: ignore[name-defined]
        user: CurrentUser,
        session: SessionDep,
        redis: RedisDep,
    ) -> TripPublicBase:
        trip = await service.update_trip(
            session=session,
            redis=redis,
            owner_id=user.id,
            trip_id=trip_id,
            changes=data.to_changes(),
        )
        return version.public.model_validate(trip)

    @router.delete(
        "/{trip_id:uuid}",
        name=version.route_name("delete_trip"),
        status_code=status.HTTP_204_NO_CONTENT,
        response_model=None,
        response_class=Response,
        summary="Delete a trip",
        description=version.describe(version.delete_description),
        responses=NOT_FOUND,
    )
    async def delete_trip(
        trip_id: TripId, user: CurrentUser, session: SessionDep, redis: RedisDep
    ) -> None:
        await service.delete_trip(session=session, redis=redis, owner_id=user.id, trip_id=trip_id)

    return router


def _bulk_result(version: TripsVersion, outcomes: Sequence[service.BulkOutcome]) -> BulkResult:
    results = [
        {
            "index": outcome.index,
            "status": 201 if outcome.error is None else outcome.error.status_code,
            "trip": version.public.model_validate(outcome.trip) if outcome.trip else None,
            "error": ErrorResponse.of(outcome.error) if outcome.error else None,
        }
        for outcome in outcomes
    ]
    failed = sum(1 for outcome in outcomes if outcome.error is not None)
    return version.bulk_result.model_validate(
        {"created": len(outcomes) - failed, "failed": failed, "results": results}
    )


router = trips_router(V1)
router_v2 = trips_router(V2)
