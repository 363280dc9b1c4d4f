"""The sweepers: crons that enqueue again work Postgres says is pending but no job carries.

Work is committed to Postgres before its job is enqueued, so a job can be lost (Redis was down
after the commit, Redis lost its memory, a worker died) but the work cannot. Each sweeper has
the same shape (`sweep`): find rows pending for a while, enqueue each one's job again under its
registry job ID and its own correlation ID, log one line if any was enqueued, none otherwise.
Deterministic job IDs make a second enqueue of work still queued or running harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.data import retry_transient, stale_jobs
from tripline_common.messaging import DELIVER_WEBHOOK, PROCESS_BATCH, REQUEST_ID_KWARG
from tripline_worker.context import ArqContext, context
from tripline_worker.settings import WorkerServiceSettings
from tripline_worker.telemetry.processing import stuck_batches
from tripline_worker.webhooks.delivery import lost_deliveries

log = structlog.get_logger("tripline.worker.sweepers")


@dataclass(frozen=True)
class LostJob:
    """A job to enqueue again: its registry name, argument, job ID and correlation ID."""

    name: str
    key: str
    job_id: str
    request_id: str | None


Finder = Callable[[AsyncSession, WorkerServiceSettings], Awaitable[list[LostJob]]]


async def sweep(ctx: ArqContext, find: Finder, *, event: str) -> int:
    """The sweepers' one skeleton: enqueue what `find` returns; log `event` if any was enqueued.

    The work's own correlation ID travels on, so the retry joins the original story.
    """
    worker = context(ctx)
    async with worker.session_factory() as session:
        lost = await find(session, worker.settings)
    requeued = 0
    for job in lost:
        if await worker.job_queue.requeue(
            job.name, job.key, job_id=job.job_id, **{REQUEST_ID_KWARG: job.request_id}
        ):
            requeued += 1
    if requeued:
        log.info(event, found=len(lost), requeued=requeued)
    return requeued


async def _stuck_batches(session: AsyncSession, settings: WorkerServiceSettings) -> list[LostJob]:
    rows = await stuck_batches(
        session=session,
        pending_for=timedelta(seconds=settings.batch_requeue_after_seconds),
        limit=settings.requeue_limit,
    )
    return [
        LostJob(PROCESS_BATCH.name, str(batch_id), PROCESS_BATCH.job_id(batch_id), request_id)
        for batch_id, request_id in rows
    ]


async def _lost_deliveries(session: AsyncSession, settings: WorkerServiceSettings) -> list[LostJob]:
    rows = await lost_deliveries(
        session=session,
        pending_for=timedelta(seconds=settings.delivery_requeue_after_seconds),
        limit=settings.requeue_limit,
    )
    return [
        LostJob(DELIVER_WEBHOOK.name, str(delivery_id), DELIVER_WEBHOOK.job_id(delivery_id), rid)
        for delivery_id, rid in rows
    ]


async def _stale_tracked_jobs(
    session: AsyncSession, settings: WorkerServiceSettings
) -> list[LostJob]:
    rows = await stale_jobs(
        session=session,
        queued_for=timedelta(seconds=settings.batch_requeue_after_seconds),
        # A live worker would have finished (or been cancelled at job_timeout) long before.
        running_for=timedelta(seconds=settings.job_timeout + 300),
        limit=settings.requeue_limit,
    )
    return [
        LostJob(kind, str(job_id), arq_job_id, request_id)
        for job_id, kind, arq_job_id, request_id in rows
    ]


@retry_transient()
async def requeue_stuck_batches(ctx: ArqContext) -> int:
    """Cron: enqueue batches still pending after a while; a batch that keeps failing is given
    up by `claim_batch`."""
    return await sweep(ctx, _stuck_batches, event="stuck_batches_requeued")


@retry_transient()
async def requeue_stuck_deliveries(ctx: ArqContext) -> int:
    """Cron: enqueue deliveries still pending after a while whose job was lost. A delivery
    waiting for its next retry still has its job, so enqueueing it again is refused: nothing
    runs twice."""
    return await sweep(ctx, _lost_deliveries, event="stuck_deliveries_requeued")


@retry_transient()
async def requeue_stuck_jobs(ctx: ArqContext) -> int:
    """Cron: enqueue tracked jobs still `queued` (or `running` with no live worker) after a
    while (see `tripline_common.data.tracked_jobs`)."""
    return await sweep(ctx, _stale_tracked_jobs, event="stuck_jobs_requeued")
