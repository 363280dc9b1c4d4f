"""Telemetry batch jobs: process one batch; the sweeper re-enqueues batches nobody picked up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select

from tripline_common.data import is_transient_db_error, retry_transient, unit_of_work
from tripline_common.data.models import BatchStatus, TelemetryBatch
from tripline_common.messaging import PROCESS_BATCH, process_batch_job_id
from tripline_worker.alerts.service import publish_alerts
from tripline_worker.telemetry.processing import (
    BatchOutcome,
    claim_batch,
    process_claimed_batch,
    record_batch_error,
)

log = structlog.get_logger("tripline.worker.batches")


async def process_batch(ctx: dict[str, Any], batch_id: str) -> str:
    """Apply a batch to its trip, raise its alerts, mark it processed; then publish the alerts.

    Idempotent: a second run finds the batch processed and changes nothing. ARQ may run it
    again after a worker dies, and the sweeper may enqueue it again; both are harmless.
    """
    batch_uuid = uuid.UUID(batch_id)
    settings = ctx["settings"]
    refused = await retry_transient()(claim_batch)(
        session_factory=ctx["session_factory"],
        batch_id=batch_uuid,
        max_attempts=settings.max_batch_attempts,
    )
    if refused is not None:
        if refused.status == "gave_up":
            log.warning("batch_given_up", batch_id=batch_id)
        else:
            log.info(f"batch_{refused.status}", batch_id=batch_id)
        return refused.status
    try:
        outcome = await _process(ctx, batch_uuid)
    except Exception as exc:
        if not is_transient_db_error(exc):
            await record_batch_error(
                session_factory=ctx["session_factory"], batch_id=batch_uuid, error=exc
            )
        raise
    if outcome.status != "processed":
        log.info(f"batch_{outcome.status}", batch_id=batch_id)
        return outcome.status
    metrics = ctx["metrics"]
    if outcome.received_at is not None:
        # Committed: from ingest's 202 to the batch's effects being stored.
        latency = (datetime.now(UTC) - outcome.received_at).total_seconds()
        metrics.batch_latency.observe(max(0.0, latency))
    await publish_alerts(ctx["queue"].redis, outcome.alerts)
    log.info(
        "batch_processed",
        batch_id=batch_id,
        events=outcome.events,
        attached=outcome.attached,
        alerts=len(outcome.alerts),
    )
    metrics.events_processed.inc(outcome.events)
    for event in outcome.alerts:
        metrics.alerts_raised.labels(event.alert.rule).inc()
    return outcome.status


@retry_transient()
async def _process(ctx: dict[str, Any], batch_id: uuid.UUID) -> BatchOutcome:
    # The row locks and the status check make a concurrent second run wait, then do nothing.
    async with unit_of_work(ctx["session_factory"], ctx["queue"]) as session:
        outcome = await process_claimed_batch(
            session=session, queue=ctx["queue"], batch_id=batch_id, settings=ctx["settings"]
        )
    return outcome


@retry_transient()
async def requeue_stuck_batches(ctx: dict[str, Any]) -> int:
    """Cron: enqueue batches committed but still pending after a while (Redis was down when
    ingest tried, Redis lost its queue, or a worker died). Deterministic job IDs make a double
    enqueue harmless; a batch that keeps failing is given up by `claim_batch`."""
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
        if await ctx["queue"].requeue(
            PROCESS_BATCH,
            str(batch_id),
            job_id=process_batch_job_id(batch_id),
            request_id=request_id,
        ):
            requeued += 1
    if requeued:
        log.info("stuck_batches_requeued", found=len(stuck), requeued=requeued)
    return requeued
