"""`import_waypoints`: the tracked job that replaces a trip's waypoints from an uploaded file.

Enqueued by the API (`POST /v1/trips/{id}/waypoints/import`) through `tracked_jobs.create_job`;
the file's text is in `job.params["content"]` (small: the API caps it). The file is parsed and
every row checked first (`trips.waypoint_files`); then the trip's waypoints are replaced and the
job finished in ONE transaction, so a run is all or nothing, and running it again gives the same
waypoints. A file with problems ends the job `failed` with one message per line, safe to show.
"""

from __future__ import annotations

import uuid
from typing import Any

from tripline_common.data import finish_job, unit_of_work
from tripline_common.data.models import Job
from tripline_worker.context import ArqContext, context
from tripline_worker.jobs.tracking import report_progress, tracked_job
from tripline_worker.trips.waypoint_files import (
    WaypointFileError,
    parse_waypoints,
    replace_waypoints,
)


@tracked_job
async def import_waypoints(ctx: ArqContext, job: Job) -> dict[str, Any] | None:
    """Replace the trip's waypoints with the file's, and finish the job, in one transaction."""
    worker = context(ctx)
    params = job.params
    try:
        points = parse_waypoints(str(params.get("format")), str(params.get("content", "")))
    except WaypointFileError as problems:
        # A bad file is the client's to fix, not a crash: the job ends `failed` with the
        # problems (the tracking wrapper leaves a finished job as it is).
        async with unit_of_work(worker.session_factory) as session:
            await finish_job(session=session, job_id=job.id, error=problems.message())
        return None
    await report_progress(ctx, job, 50)
    result = {"imported": len(points)}
    async with unit_of_work(worker.session_factory) as session:
        replaced = await replace_waypoints(
            session=session,
            trip_id=uuid.UUID(params["trip_id"]),
            owner_id=job.owner_id,
            points=points,
        )
        if not replaced:
            await finish_job(session=session, job_id=job.id, error="The trip no longer exists.")
            return None
        await finish_job(session=session, job_id=job.id, result=result)
    return result
