"""Tracked jobs: ARQ functions whose progress users follow through a `jobs` row.

    @tracked_job
    async def import_waypoints(ctx, job: Job) -> dict:  # enqueued by jobs.create_job
        ...                                             # job.params holds the inputs
        await report_progress(ctx, job, 50)
        return {"imported": 120}                        # stored as the job's result

The row goes `running` when a run starts (again after a worker died), `succeeded` with the
returned result, or `failed` with a message safe to show (details stay in the logs, under the
job's correlation ID). A run for a job already finished does nothing.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from arq import Retry

from tripline_common.data import (
    finish_job,
    mark_job_running,
    retry_transient,
    set_job_progress,
    unit_of_work,
)
from tripline_common.data.models import Job
from tripline_common.platform import get_request_id, set_user_id

log = structlog.get_logger("tripline.worker.jobs")

TrackedFunc = Callable[[dict[str, Any], Job], Awaitable[dict[str, Any] | None]]


def tracked_job(func: TrackedFunc) -> Callable[[dict[str, Any], str], Awaitable[str]]:
    """Wrap `func(ctx, job)` into an ARQ function `(ctx, job_id)` that keeps the row current."""

    @functools.wraps(func)
    async def wrapper(ctx: dict[str, Any], job_id: str) -> str:
        job_uuid = uuid.UUID(job_id)
        job = await retry_transient()(_start)(ctx, job_uuid)
        if job is None:
            log.info("tracked_job_not_runnable", tracked_job_id=job_id)
            return "not_runnable"
        if job.owner_id is not None:
            set_user_id(job.owner_id)  # Its Sentry event names the user it works for.
        try:
            result = await func(ctx, job)
        except Retry:
            raise
        except Exception:
            log.exception("tracked_job_failed", tracked_job_id=job_id)
            await retry_transient()(_finish)(
                ctx,
                job_uuid,
                None,
                f"The job failed. Quote request ID {get_request_id()} when reporting it.",
            )
            raise
        await retry_transient()(_finish)(ctx, job_uuid, result or {}, None)
        return "succeeded"

    return wrapper


async def report_progress(ctx: dict[str, Any], job: Job, percent: int) -> None:
    """Record how far a tracked job is (0-100), committed at once so clients see it."""
    async with unit_of_work(ctx["session_factory"]) as session:
        await set_job_progress(session=session, job_id=job.id, progress=percent)


async def _start(ctx: dict[str, Any], job_id: uuid.UUID) -> Job | None:
    async with unit_of_work(ctx["session_factory"]) as session:
        return await mark_job_running(session=session, job_id=job_id)


async def _finish(
    ctx: dict[str, Any], job_id: uuid.UUID, result: dict[str, Any] | None, error: str | None
) -> None:
    async with unit_of_work(ctx["session_factory"]) as session:
        await finish_job(session=session, job_id=job_id, result=result, error=error)
