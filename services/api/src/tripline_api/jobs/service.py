"""Reading the current user's jobs (the rows are `tripline_common.data.jobs`')."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data import get_job
from tripline_common.data.models import Job
from tripline_common.platform import NotFoundError


async def get_own_job(*, session: AsyncSession, owner_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """The owner's job; another user's job is indistinguishable from a missing one (404)."""
    job = await get_job(session=session, job_id=job_id, owner_id=owner_id)
    if job is None:
        raise NotFoundError("Job not found.", code="job_not_found")
    return job
