"""Console page for background work: queue health, failures (retry), tracked jobs (cancel)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from tripline_admin.console.paging import Pager, console_page_params, counted
from tripline_admin.console.rendering import redirect, render
from tripline_admin.console.security import ConsoleUser
from tripline_admin.jobs import service
from tripline_admin.jobs.schemas import FailureSource, JobFilters, JobPage
from tripline_admin.queues.service import queue_health
from tripline_common.data import AuditOriginDep
from tripline_common.data.models import JobStatus
from tripline_common.web import PageParams, QueueDep, RedisDep, SessionDep, SettingsDep

router = APIRouter()

JobPageParams = Annotated[PageParams, Depends(console_page_params(service.JOB_SORT, JobPage))]


@router.get("/jobs")
async def jobs_page(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    page: JobPageParams,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    chosen = JobStatus(status) if status in {s.value for s in JobStatus} else None
    filters = JobFilters(status=[chosen] if chosen else [])
    result = await service.list_jobs(session=session, filters=filters, page=counted(page))
    return render(
        request,
        "jobs.html",
        {
            "nav": "jobs",
            "queues": [await queue_health(redis=redis, queue_name=settings.arq_queue_name)],
            "failures": await service.recent_failures(
                session=session, redis=redis, queue_name=settings.arq_queue_name, limit=50
            ),
            "jobs": result.rows,
            "pager": Pager.of(request, result),
            "status": chosen.value if chosen else "",
            "statuses": list(JobStatus),
        },
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(
    request: Request,
    job_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    queue: QueueDep,
    origin: AuditOriginDep,
) -> Response:
    job = await service.cancel_job(
        session=session, queue=queue, actor=user, job_id=job_id, origin=origin
    )
    return redirect(request, "/console/jobs", ("success", f"Job {job.kind} is cancelled."))


@router.post("/failures/{source}/{failure_id}/retry")
async def retry_failure(
    request: Request,
    source: FailureSource,
    failure_id: Annotated[str, Path(max_length=200)],
    user: ConsoleUser,
    session: SessionDep,
    queue: QueueDep,
    origin: AuditOriginDep,
) -> Response:
    accepted = await service.retry_failure(
        session=session,
        queue=queue,
        actor=user,
        source=source,
        failure_id=failure_id,
        origin=origin,
    )
    return redirect(
        request,
        "/console/jobs",
        ("success", f"Queued again as {accepted.arq_job_id} (request ID {accepted.request_id})."),
    )
