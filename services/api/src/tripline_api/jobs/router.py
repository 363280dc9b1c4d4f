"""`/v1/jobs` endpoints: declarations only; the work happens in `jobs.service`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from tripline_api.jobs import service
from tripline_api.jobs.schemas import JobPublic
from tripline_common.platform import ErrorResponse
from tripline_common.web import CurrentUser, SessionDep

router = APIRouter(
    prefix="/jobs",
    tags=["jobs"],
    responses={401: {"model": ErrorResponse, "description": "Missing, invalid or revoked token."}},
)

JobId = Annotated[uuid.UUID, Path(description="The job's ID.")]


@router.get(
    "/{job_id:uuid}",
    name="get_job",
    response_model=JobPublic,
    summary="Get a job",
    description="One of your background jobs (an import, say): its status, progress, and "
    "result or error. Poll it after a 202 until `status` is `succeeded` or `failed`.",
    responses={404: {"model": ErrorResponse, "description": "No such job among yours."}},
)
async def get_job(job_id: JobId, user: CurrentUser, session: SessionDep) -> JobPublic:
    job = await service.get_own_job(session=session, owner_id=user.id, job_id=job_id)
    return JobPublic.model_validate(job)
