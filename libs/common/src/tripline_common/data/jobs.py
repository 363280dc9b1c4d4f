"""User-visible background jobs (imports, exports): the `jobs` row and its ARQ job, kept in step.

The contract between the API, which creates jobs, and the worker, which runs them:

- `create_job` adds the row (status `queued`) in the caller's unit of work and enqueues the ARQ
  function named by `kind` after commit, with the row's id as its only argument and
  `<kind>:<id>` as its job ID. Everything else the function needs is in `jobs.params` (or in
  rows it names), so the job can be re-enqueued from Postgres alone.
- The worker moves the row to `running`, reports `progress`, and ends it `succeeded` (with a
  `result` for the client) or `failed` (with an `error` safe to show).
- `requeue_stale_jobs` (a worker cron) re-enqueues rows still `queued` (or `running`) after a
  while: Redis was down when the API enqueued, or the job was lost with Redis' memory.

The API reads rows with `get_job` for `GET /v1/jobs/{id}`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data.db import SessionFactory
from tripline_common.data.models import Job, JobStatus
from tripline_common.messaging.queue import REQUEST_ID_KWARG, JobQueue
from tripline_common.platform.correlation import get_request_id

_ERROR_MAX_LENGTH = 2000
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def job_arq_id(kind: str, job_id: uuid.UUID | str) -> str:
    """The deterministic ARQ job ID of a tracked job."""
    return f"{kind}:{job_id}"


async def create_job(
    *,
    session: AsyncSession,
    queue: JobQueue,
    kind: str,
    owner_id: uuid.UUID | None,
    params: dict[str, Any] | None = None,
) -> Job:
    """Add a queued job in `session` and enqueue `kind(job_id)` once the session commits."""
    job_id = uuid.uuid4()
    job = Job(
        id=job_id,
        owner_id=owner_id,
        kind=kind,
        arq_job_id=job_arq_id(kind, job_id),
        params=params or {},
        request_id=get_request_id(),
    )
    session.add(job)
    await session.flush()
    queue.enqueue_after_commit(session, kind, str(job_id), job_id=job.arq_job_id)
    return job


async def get_job(
    *, session: AsyncSession, job_id: uuid.UUID, owner_id: uuid.UUID | None = None
) -> Job | None:
    """A job by id; with `owner_id`, only if that user owns it (others see "not found")."""
    query = select(Job).where(col(Job.id) == job_id)
    if owner_id is not None:
        query = query.where(col(Job.owner_id) == owner_id)
    job: Job | None = await session.scalar(query)
    return job


async def mark_job_running(*, session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    """Move a job to `running` (again, after a worker died mid-job); None if it is finished
    or unknown, in which case the worker should not run it."""
    job: Job | None = await session.scalar(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status).in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .values(status=JobStatus.RUNNING, started_at=datetime.now(UTC))
        .returning(Job)
    )
    return job


async def set_job_progress(*, session: AsyncSession, job_id: uuid.UUID, progress: int) -> None:
    """Record how far a running job is, in percent (clamped to 0-100)."""
    await session.execute(
        update(Job)
        .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
        .values(progress=max(0, min(100, progress)))
    )


async def finish_job(
    *,
    session: AsyncSession,
    job_id: uuid.UUID,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    """End a job: `succeeded` with `result`, or `failed` with `error` (shown to the client)."""
    values: dict[str, Any] = {"finished_at": datetime.now(UTC)}
    if error is None:
        values.update(status=JobStatus.SUCCEEDED, progress=100, result=result)
    else:
        values.update(status=JobStatus.FAILED, error=error[:_ERROR_MAX_LENGTH])
    await session.execute(
        update(Job).where(col(Job.id) == job_id, col(Job.status).not_in(FINISHED)).values(**values)
    )


async def requeue_stale_jobs(
    *,
    session_factory: SessionFactory,
    queue: JobQueue,
    queued_for: timedelta,
    running_for: timedelta,
    limit: int,
) -> int:
    """Enqueue jobs `queued` for longer than `queued_for`, or `running` for longer than
    `running_for` (their worker died and Redis lost the job); returns how many were enqueued.

    Deterministic job IDs make this harmless for jobs that are in fact still in the queue.
    """
    now = datetime.now(UTC)
    async with session_factory() as session:
        rows = (
            await session.execute(
                select(col(Job.id), col(Job.kind), col(Job.arq_job_id), col(Job.request_id))
                .where(
                    or_(
                        and_(
                            col(Job.status) == JobStatus.QUEUED,
                            col(Job.created_at) < now - queued_for,
                        ),
                        and_(
                            col(Job.status) == JobStatus.RUNNING,
                            col(Job.started_at) < now - running_for,
                        ),
                    )
                )
                .order_by(col(Job.created_at))
                .limit(limit)
            )
        ).all()
    requeued = 0
    for job_id, kind, arq_job_id, request_id in rows:
        if await queue.requeue(
            kind, str(job_id), job_id=arq_job_id, **{REQUEST_ID_KWARG: request_id}
        ):
            requeued += 1
    return requeued
