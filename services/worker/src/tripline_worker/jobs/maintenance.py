"""Housekeeping crons: telemetry partitions and retention, expired sessions (`maintenance`).

Idempotency keys need no cron: they live in Redis with a TTL and expire by themselves. Lost jobs
are the sweepers' (`jobs.sweepers`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from tripline_common.data import retry_transient
from tripline_worker.context import ArqContext, WorkerContext, context
from tripline_worker.maintenance import (
    purge_expired_batches,
    purge_expired_sessions,
    purge_old_telemetry,
)
from tripline_worker.telemetry.partitions import maintain_partitions, retention_cutoff

log = structlog.get_logger("tripline.worker.maintenance")


def _budget(worker: WorkerContext) -> float:
    # Stop well inside the job timeout; what is left is done by the next run.
    return max(1.0, worker.settings.job_timeout * 0.5)


@retry_transient()
async def purge_telemetry(ctx: ArqContext) -> int:
    """Cron: create telemetry's day partitions ahead, drop those past retention, and delete
    the batches past retention; returns the batches deleted."""
    worker = context(ctx)
    settings = worker.settings
    now = datetime.now(UTC)
    changes = await maintain_partitions(
        session_factory=worker.session_factory,
        now=now,
        days_ahead=settings.telemetry_partitions_ahead_days,
        retention_days=settings.telemetry_retention_days,
    )
    if changes is None:  # Revision 0011 has not run yet: the old table, the old way.
        deleted = await purge_old_telemetry(
            session_factory=worker.session_factory,
            older_than=timedelta(days=settings.telemetry_retention_days),
            chunk=settings.cleanup_batch_size,
            budget_seconds=_budget(worker),
        )
        if deleted:
            log.info("telemetry_purged", batches=deleted)
        return deleted
    deleted = await purge_expired_batches(
        session_factory=worker.session_factory,
        before=retention_cutoff(now, settings.telemetry_retention_days),
        chunk=settings.cleanup_batch_size,
        budget_seconds=_budget(worker),
        unpartitioned=changes.by_batch,
    )
    if deleted or changes.created or changes.dropped or changes.kept:
        log.info(
            "telemetry_purged",
            batches=deleted,
            partitions_created=changes.created,
            partitions_dropped=changes.dropped,
            partitions_kept=changes.kept,
            moved_from_default=changes.moved_from_default,
        )
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
