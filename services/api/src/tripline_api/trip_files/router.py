"""Trip files: `POST /v{1,2}/trips/{id}/waypoints/import` and
`GET /v{1,2}/trips/{id}/telemetry.csv`. Declarations only; the work happens in
`trip_files.service`.

The same operations under both trips versions (files carry no coordinates in the JSON shape
that changed): under `/v1` they are deprecated like the rest of `/v1/trips`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile, status
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from tripline_api.jobs.schemas import JobPublic
from tripline_api.state import ApiSettingsDep
from tripline_api.streaming import ClosingStreamingResponse
from tripline_api.trip_files import service
from tripline_api.trips.deprecation import DEPRECATION_NOTE, DeprecatedV1Route
from tripline_api.trips.parameters import TripId
from tripline_api.trips.responses import NOT_FOUND, UNAUTHORIZED
from tripline_common.platform import ErrorResponse
from tripline_common.web import CurrentUser, PgDep, QueueDep, RedisDep, SessionDep


def trip_files_router(*, v1: bool) -> APIRouter:
    """The trip file operations, for `/v1` (deprecated) or `/v2`."""
    note = " " + DEPRECATION_NOTE if v1 else ""
    router = APIRouter(
        prefix="/trips",
        tags=["trips" if v1 else "trips-v2"],
        deprecated=v1 or None,
        route_class=DeprecatedV1Route if v1 else APIRoute,
        responses=UNAUTHORIZED,
    )

    @router.post(
        "/{trip_id:uuid}/waypoints/import",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=JobPublic,
        summary="Import a trip's waypoints from a file",
        description="Upload a CSV (header `lat,lon,name`) or GPX file (its `wpt` points, else its "
        "`rtept`); at most 50 waypoints. Size and type (declared and sniffed) are checked at "
        "once; the import itself runs in the background and **replaces** the trip's waypoints. "
        "Answers 202 with the job; poll `Location` (`GET /v1/jobs/{id}`) for the outcome: "
        '`result` `{"imported": n}`, or `error` listing the problems by line.' + note,
        responses={
            **NOT_FOUND,
            202: {"description": "Queued.", "headers": {"Location": {"description": "The job."}}},
            413: {"model": ErrorResponse, "description": "The file is too large."},
            415: {
                "model": ErrorResponse,
                "description": "Not a CSV or GPX file, or its content does not match its type.",
            },
        },
    )
    async def import_waypoints(
        trip_id: TripId,
        file: Annotated[UploadFile, File(description="The CSV or GPX file.")],
        user: CurrentUser,
        session: SessionDep,
        queue: QueueDep,
        settings: ApiSettingsDep,
        request: Request,
        response: Response,
    ) -> JobPublic:
        job = await service.start_waypoint_import(
            session=session,
            queue=queue,
            owner_id=user.id,
            trip_id=trip_id,
            upload=file,
            max_bytes=settings.waypoint_import_max_bytes,
        )
        response.headers["Location"] = request.app.url_path_for("get_job", job_id=str(job.id))
        return JobPublic.model_validate(job)

    @router.get(
        "/{trip_id:uuid}/telemetry.csv",
        response_class=StreamingResponse,
        summary="Export a trip's telemetry as CSV",
        description="Every position fix of the trip, oldest first, as a CSV download (columns "
        "`"
        + ",".join(service.EXPORT_COLUMNS)
        + "`). Streamed: rows are read a page at a time and sent as they are read (not a "
        "snapshot: fixes stored during the download may be included). At most "
        "`TELEMETRY_EXPORT_MAX_PER_USER` exports of yours run at once (on all replicas); one "
        "more is answered 429 `too_many_exports` with `Retry-After`." + note,
        responses={
            **NOT_FOUND,
            429: {"model": ErrorResponse, "description": "Too many of your exports are running."},
            200: {
                "description": "The CSV file.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "headers": {"Content-Disposition": {"description": "attachment; filename=..."}},
            },
        },
    )
    async def export_telemetry(
        trip_id: TripId,
        user: CurrentUser,
        pg: PgDep,
        redis: RedisDep,
        settings: ApiSettingsDep,
        response: Response,
    ) -> StreamingResponse:
        body = await service.start_telemetry_export(
            pg=pg,
            redis=redis,
            owner_id=user.id,
            trip_id=trip_id,
            max_per_user=settings.telemetry_export_max_per_user,
        )
        streamed = ClosingStreamingResponse(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="trip-{trip_id}-telemetry.csv"'},
        )
        # A returned Response does not get the headers dependencies set (the v1 deprecation).
        for name, value in response.headers.items():
            if name != "content-length":
                streamed.headers.append(name, value)
        return streamed

    return router


router = trip_files_router(v1=True)
router_v2 = trip_files_router(v1=False)
