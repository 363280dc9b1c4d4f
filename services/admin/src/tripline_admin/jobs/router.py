"""`/v1/jobs` and `/v1/failures`: tracked jobs, recent failures, retry and cancel.
Declarations only; the work happens in `jobs.service` (which explains what is kept where)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from tripline_admin.access import conflict, not_found
from tripline_admin.jobs import service
from tripline_admin.jobs.schemas import (
    Failure,
    FailureSource,
    JobAdmin,
    JobFilters,
    JobPage,
    RetryAccepted,
)
from tripline_common.data import STORABLE_TEXT, AuditOriginDep
from tripline_common.web import (
    INVALID_LIST_QUERY,
    OperatorUser,
    PageParams,
    QueueDep,
    RedisDep,
    SessionDep,
    SettingsDep,
    page_params,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])
failures_router = APIRouter(prefix="/failures", tags=["jobs"])

JobId = Annotated[uuid.UUID, Path(description="The tracked job's ID.")]
JobPageParams = Annotated[PageParams, Depends(page_params(service.JOB_SORT, JobPage))]


@router.get(
    "",
    response_model=JobPage,
    summary="List tracked jobs",
    description="Jobs of the `jobs` table (imports, exports), newest first by default; filter "
    "by status and kind.",
    responses=INVALID_LIST_QUERY,
)
async def list_jobs(
    session: SessionDep, filters: Annotated[JobFilters, Query()], page: JobPageParams
) -> JobPage:
    result = await service.list_jobs(session=session, filters=filters, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.get(
    "/{job_id}",
    response_model=JobAdmin,
    summary="View a tracked job",
    description="One job, with its error and correlation ID.",
    responses=not_found("job"),
)
async def get_job(job_id: JobId, session: SessionDep) -> JobAdmin:
    return JobAdmin.model_validate(await service.get_job(session=session, job_id=job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobAdmin,
    summary="Cancel a queued job",
    description="Marks a queued job `cancelled` and takes it off the queue; the worker will not "
    "run it even if it already picked it up. Audited as `job.cancel`.",
    responses={
        **not_found("job"),
        **conflict("The job is not queued any more (`job_not_queued`)."),
    },
)
async def cancel_job(
    job_id: JobId,
    actor: OperatorUser,
    session: SessionDep,
    queue: QueueDep,
    origin: AuditOriginDep,
) -> JobAdmin:
    job = await service.cancel_job(
        session=session, queue=queue, actor=actor, job_id=job_id, origin=origin
    )
    return JobAdmin.model_validate(job)


@failures_router.get(
    "",
    response_model=list[Failure],
    summary="Recent failures",
    description="The most recent failed work, newest first, from three sources: tracked jobs "
    "(`job`) and telemetry batches given up on (`telemetry_batch`), both durable, and any other "
    "ARQ job that raised (`arq`), visible only while ARQ keeps its result (the worker's "
    "`KEEP_RESULT`, 5 minutes by default). Each has its error and correlation ID.",
)
async def recent_failures(
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many, at most.")] = 50,
    source: Annotated[FailureSource | None, Query(description="Only this source.")] = None,
) -> list[Failure]:
    return await service.recent_failures(
        session=session,
        redis=redis,
        queue_name=settings.arq_queue_name,
        limit=limit,
        source=source,
    )


@failures_router.post(
    "/{source}/{failure_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetryAccepted,
    summary="Retry a failure",
    description="Sends the failed work back to the queue under its original correlation ID: a "
    "tracked job goes back to `queued`, a telemetry batch to `pending` with a fresh attempt "
    "budget, an `arq` job is enqueued again with its arguments. Audited as `job.retry`.",
    responses={
        **not_found("failure (or its ARQ result has expired)"),
        **conflict("It has not failed (`not_failed`) or is queued already (`job_already_queued`)."),
    },
)
async def retry_failure(
    source: Annotated[FailureSource, Path(description="job, telemetry_batch or arq.")],
    failure_id: Annotated[
        str,
        Path(max_length=200, pattern=STORABLE_TEXT, description="The failure's `id` in the list."),
    ],
    actor: OperatorUser,
    session: SessionDep,
    queue: QueueDep,
    origin: AuditOriginDep,
) -> RetryAccepted:
    return await service.retry_failure(
        session=session,
        queue=queue,
        actor=actor,
        source=source,
        failure_id=failure_id,
        origin=origin,
    )
