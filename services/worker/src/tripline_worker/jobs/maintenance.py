"""Housekeeping crons: telemetry retention, expired sessions, jobs lost between Postgres and Redis.

Idempotency keys need no cron: they live in Redis with a TTL and expire by themselves.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from tripline_common.data import requeue_stale_jobs, retry_transient
from tripline_worker.maintenance import purge_expired_sessions, purge_old_telemetry

log = structlog.get_logger("tripline.worker.maintenance")


def _budget(ctx: dict[str, Any]) -> float:
    # Stop well inside the job timeout; what is left is done by the next run.
    return max(1.0, ctx["settings"].job_timeout * 0.5)


@retry_transient()
async def purge_telemetry(ctx: dict[str, Any]) -> int:
    """Cron: delete telemetry older than the retention period."""
    settings = ctx["settings"]
    deleted = await purge_old_telemetry(
        session_factory=ctx["session_factory"],
        older_than=timedelta(days=settings.telemetry_retention_days),
        chunk=settings.cleanup_batch_size,
        budget_seconds=_budget(ctx),
    )
    if deleted:
        log.info("telemetry_purged", batches=deleted)
    return deleted


@retry_transient()
async def purge_sessions(ctx: dict[str, Any]) -> int:
    """Cron: delete sessions expired longer ago than the grace period."""
    settings = ctx["settings"]
    deleted = await purge_expired_sessions(
        session_factory=ctx["session_factory"],
        grace=timedelta(days=settings.session_cleanup_grace_days),
        chunk=settings.cleanup_batch_size,
        budget_seconds=_budget(ctx),
    )
    if deleted:
        log.info("sessions_purged", sessions=deleted)
    return deleted


@retry_transient()
async def requeue_stuck_jobs(ctx: dict[str, Any]) -> int:
    """Cron: enqueue user-visible jobs still `queued` after a while (see `data.jobs`)."""
    settings = ctx["settings"]
    requeued = await requeue_stale_jobs(
        session_factory=ctx["session_factory"],
        queue=ctx["queue"],
        queued_for=timedelta(seconds=settings.batch_requeue_after_seconds),
        # A live worker would have finished (or been cancelled at job_timeout) long before.
        running_for=timedelta(seconds=settings.job_timeout + 300),
        limit=settings.requeue_limit,
    )
    if requeued:
        log.info("stuck_jobs_requeued", requeued=requeued)
    return requeued
