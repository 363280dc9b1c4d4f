"""`check_lost_signal`: the cron that raises lost-signal alerts (logic in `alerts.lost_signal`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from tripline_common.data import retry_transient, unit_of_work
from tripline_common.messaging import AlertEvent
from tripline_worker.alerts.lost_signal import raise_lost_signal_alerts
from tripline_worker.alerts.service import publish_alerts
from tripline_worker.context import ArqContext, WorkerContext, context

log = structlog.get_logger("tripline.worker.trips")


async def check_lost_signal(ctx: ArqContext) -> int:
    """Cron: raise a lost-signal alert for each active trip silent for too long
    (`lost_signal_after_seconds`) and not yet alerted, at most `lost_signal_limit` per run,
    then publish the new ones; returns how many were raised."""
    worker = context(ctx)
    events = await _raise(worker)
    await publish_alerts(worker.redis, events)
    for event in events:
        worker.metrics.alerts_raised.labels(event.alert.rule).inc()
    if events:
        log.info("lost_signal_alerts_raised", count=len(events))
    return len(events)


@retry_transient()
async def _raise(worker: WorkerContext) -> list[AlertEvent]:
    async with unit_of_work(worker.session_factory, worker.job_queue) as session:
        return await raise_lost_signal_alerts(
            session=session,
            queue=worker.job_queue,
            silent_for=timedelta(seconds=worker.settings.lost_signal_after_seconds),
            limit=worker.settings.lost_signal_limit,
            now=datetime.now(UTC),
        )
