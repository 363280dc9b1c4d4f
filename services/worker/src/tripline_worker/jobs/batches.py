"""`process_batch`: the ARQ job that applies one telemetry batch (logic: `telemetry.processing`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog

from tripline_common.data import (
    SessionFactory,
    is_transient_db_error,
    one_connection,
    retry_transient,
    unit_of_work,
)
from tripline_worker.alerts.service import publish_alerts
from tripline_worker.context import ArqContext, WorkerContext, context
from tripline_worker.telemetry.processing import (
    BatchOutcome,
    claim_batch,
    process_claimed_batch,
    record_batch_error,
)

log = structlog.get_logger("tripline.worker.batches")


async def process_batch(ctx: ArqContext, batch_id: str) -> str:
    """Apply a batch to its trip, raise its alerts, mark it processed; then publish the alerts.

    Idempotent: a second run finds the batch processed and changes nothing. ARQ may run it
    again after a worker dies, and the sweeper may enqueue it again; both are harmless.
    """
    worker = context(ctx)
    batch_uuid = uuid.UUID(batch_id)
    # One checkout for the claim and the work: the claim's connection, just used, needs no
    # second pre-ping (a connection broken meanwhile is replaced; see `one_connection`).
    async with one_connection(worker.session_factory) as session_factory:
        refused = await retry_transient()(claim_batch)(
            session_factory=session_factory,
            batch_id=batch_uuid,
            max_attempts=worker.settings.max_batch_attempts,
        )
        if refused is None:
            try:
                outcome = await _process(worker, session_factory, batch_uuid)
            except Exception as exc:
                if not is_transient_db_error(exc):
                    await record_batch_error(
                        session_factory=session_factory, batch_id=batch_uuid, error=exc
                    )
                raise
    if refused is not None:
        if refused.status == "gave_up":
            log.warning("batch_given_up", batch_id=batch_id)
        else:
            log.info(f"batch_{refused.status}", batch_id=batch_id)
        return refused.status
    if outcome.status != "processed":
        log.info(f"batch_{outcome.status}", batch_id=batch_id)
        return outcome.status
    metrics = worker.metrics
    if outcome.received_at is not None:
        # Committed: from ingest's 202 to the batch's effects being stored.
        latency = (datetime.now(UTC) - outcome.received_at).total_seconds()
        metrics.batch_latency.observe(max(0.0, latency))
    await publish_alerts(worker.redis, outcome.alerts)
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
async def _process(
    worker: WorkerContext, session_factory: SessionFactory, batch_id: uuid.UUID
) -> BatchOutcome:
    # The row locks and the status check make a concurrent second run wait, then do nothing.
    async with unit_of_work(session_factory, worker.job_queue) as session:
        outcome = await process_claimed_batch(
            session=session, queue=worker.job_queue, batch_id=batch_id, settings=worker.settings
        )
    return outcome
