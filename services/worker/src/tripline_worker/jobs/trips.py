"""Trip jobs: the lost-signal check, a cron over active trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from tripline_common.data import retry_transient, unit_of_work
from tripline_common.data.models import Trip, TripStatus
from tripline_common.messaging import AlertEvent
from tripline_common.platform import get_request_id
from tripline_worker.alerts.rules import lost_signal_alert
from tripline_worker.alerts.service import publish_alerts, raise_alerts

log = structlog.get_logger("tripline.worker.trips")

# Trips checked per run, at most (the rest wait for the next run).
LOST_SIGNAL_LIMIT = 1000


async def check_lost_signal(ctx: dict[str, Any]) -> int:
    """Cron: raise a lost-signal alert for each active trip silent for too long.

    Silent means no fix since `lost_signal_after_seconds` (counted from the trip's start if it
    never had one). One alert per silence: the dedupe key holds the time of the last fix.
    """
    events = await _raise(ctx)
    await publish_alerts(ctx["queue"].redis, events)
    for event in events:
        ctx["metrics"].alerts_raised.labels(event.alert.rule).inc()
    if events:
        log.info("lost_signal_alerts_raised", count=len(events))
    return len(events)


@retry_transient()
async def _raise(ctx: dict[str, Any]) -> list[AlertEvent]:
    settings = ctx["settings"]
    now = datetime.now(UTC)
    last_fix = func.coalesce(Trip.last_seen_at, Trip.started_at)
    events: list[AlertEvent] = []
    async with unit_of_work(ctx["session_factory"], ctx["queue"]) as session:
        silent = (
            await session.execute(
                select(Trip.id, Trip.owner_id, Trip.device_id, last_fix.label("last_fix"))
                .where(
                    Trip.status == TripStatus.ACTIVE,
                    last_fix < now - timedelta(seconds=settings.lost_signal_after_seconds),
                )
                .order_by(last_fix)
                .limit(LOST_SIGNAL_LIMIT)
            )
        ).all()
        for trip in silent:
            events += await raise_alerts(
                session=session,
                queue=ctx["queue"],
                drafts=[lost_signal_alert(trip.id, trip.last_fix, now)],
                owner_id=trip.owner_id,
                trip_id=trip.id,
                device_id=trip.device_id,
                request_id=get_request_id(),
                now=now,
            )
    return events
