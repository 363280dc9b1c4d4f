"""Telemetry batch jobs: process one batch; the sweeper re-enqueues batches nobody picked up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from tripline_common.db import retry_transient, unit_of_work
from tripline_common.models import BatchStatus, TelemetryBatch
from tripline_common.queue import PROCESS_BATCH, process_batch_job_id

log = structlog.get_logger("tripline.worker.batches")


@retry_transient()
async def process_batch(ctx: dict[str, Any], batch_id: str) -> str:
    """Mark a pending batch processed. Idempotent: a second run finds it done and changes nothing.

    The row is locked for the transaction, so two workers running the same batch (ARQ may run a
    job again after a worker dies) serialise instead of both processing it.
    """
    async with unit_of_work(ctx["session_factory"], ctx["queue"]) as session:
        batch = await session.scalar(
            select(TelemetryBatch).where(TelemetryBatch.id == uuid.UUID(batch_id)).with_for_update()
        )
        if batch is None:
            log.warning("batch_missing", batch_id=batch_id)
            return "missing"
        if batch.status != BatchStatus.PENDING:
            log.info("batch_already_processed", batch_id=batch_id, status=batch.status.value)
            return "already_processed"
        batch.attempts += 1
        batch.status = BatchStatus.PROCESSED
        batch.processed_at = datetime.now(UTC)
        log.info("batch_processed", batch_id=batch_id, events=batch.event_count)
        return "processed"


@retry_transient()
async def requeue_stuck_batches(ctx: dict[str, Any]) -> int:
    """Cron: enqueue batches committed but still pending after a while (Redis was down when
    ingest tried, or a worker died). Deterministic job IDs make a double enqueue harmless."""
    settings = ctx["settings"]
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.batch_requeue_after_seconds)
    async with ctx["session_factory"]() as session:
        rows = await session.execute(
            select(TelemetryBatch.id, TelemetryBatch.request_id)
            .where(TelemetryBatch.status == BatchStatus.PENDING)
            .where(TelemetryBatch.received_at < cutoff)
            .order_by(TelemetryBatch.received_at)
            .limit(settings.requeue_limit)
        )
        stuck = rows.all()
    requeued = 0
    for batch_id, request_id in stuck:
        # The batch's own correlation ID travels on, so the retry joins the original story.
        if await ctx["queue"].enqueue(
            PROCESS_BATCH,
            str(batch_id),
            job_id=process_batch_job_id(batch_id),
            request_id=request_id,
        ):
            requeued += 1
    if stuck:
        log.info("stuck_batches_requeued", found=len(stuck), requeued=requeued)
    return requeued
