"""Lost signal: active trips silent for too long, and the one alert each silence raises."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data.models import Trip, TripStatus
from tripline_common.messaging import AlertEvent, JobQueue
from tripline_common.platform import get_request_id
from tripline_worker.alerts.rules import lost_signal_alert
from tripline_worker.alerts.service import raise_alerts


async def raise_lost_signal_alerts(
    *, session: AsyncSession, queue: JobQueue, silent_for: timedelta, limit: int, now: datetime
) -> list[AlertEvent]:
    """Raise a lost-signal alert for each active trip with no fix for `silent_for` (counted
    from the trip's start if it never had one), the `limit` longest silent first; returns the
    alerts that are new, to publish after commit.

    One alert per silence: the dedupe key holds the time of the last fix.
    """
    last_fix = func.coalesce(col(Trip.last_seen_at), col(Trip.started_at))
    silent = (
        await session.execute(
            select(
                col(Trip.id), col(Trip.owner_id), col(Trip.device_id), last_fix.label("last_fix")
            )
            .where(col(Trip.status) == TripStatus.ACTIVE, last_fix < now - silent_for)
            .order_by(last_fix)
            .limit(limit)
        )
    ).all()
    events: list[AlertEvent] = []
    for trip in silent:
        events += await raise_alerts(
            session=session,
            queue=queue,
            drafts=[lost_signal_alert(trip.id, trip.last_fix, now)],
            owner_id=trip.owner_id,
            trip_id=trip.id,
            device_id=trip.device_id,
            request_id=get_request_id(),
            now=now,
        )
    return events
