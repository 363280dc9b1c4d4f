"""Housekeeping crons: telemetry retention, expired sessions (logic: `tripline_worker.maintenance`).

Idempotency keys need no cron: they live in Redis with a TTL and expire by themselves. Lost jobs
are the sweepers' (`jobs.sweepers`).
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from tripline_common.data import retry_transient
from tripline_worker.context import ArqContext, WorkerContext, context
from tripline_worker.maintenance import purge_expired_sessions, purge_old_telemetry

log = structlog.get_logger("tripline.worker.maintenance")


def _budget(worker: WorkerContext) -> float:
    # Stop well inside the job timeout; what is left is done by the next run.
    return max(1.0, worker.settings.job_timeout * 0.5)


@retry_transient()
async def purge_telemetry(ctx: ArqContext) -> int:
    """Cron: delete telemetry older than the retention period."""
    worker = context(ctx)
    deleted = await purge_old_telemetry(
        session_factory=worker.session_factory,
        older_than=timedelta(days=worker.settings.telemetry_retention_days),
        chunk=worker.settings.cleanup_batch_size,
        budget_seconds=_budget(worker),
    )
    if deleted:
        log.info("telemetry_purged", batches=deleted)
    return deleted


@retry_transient()
async def purge_sessions(ctx: ArqContext) -> int:
    """Cron: delete sessions expired longer ago than the grace period."""
    worker = context(ctx)
    deleted = await purge_expired_sessions(
        session_factory=worker.session_factory,
        grace=timedelta(days=worker.settings.session_cleanup_grace_days),
        chunk=worker.settings.cleanup_batch_size,
        budget_seconds=_budget(worker),
    )
    if deleted:
        log.info("sessions_purged", sessions=deleted)
    return deleted
