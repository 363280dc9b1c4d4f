"""Lost signal: active trips silent for too long, and the one alert each silence raises."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.messaging import AlertEvent, JobQueue
from tripline_common.platform import get_request_id
from tripline_worker.alerts.rules import lost_signal_alert
from tripline_worker.alerts.service import AlertTarget, raise_alerts

# The silent trips whose silence has no alert yet, longest silent first. The key tested is the
# alert's dedupe key exactly as `rules.lost_signal_alert` builds it
# (`lost_signal:<trip>:<unix seconds of the last fix>`), looked up in its unique index: trips
# already alerted are skipped here rather than re-inserted and dropped by ON CONFLICT, so each
# run's chunk is new work and successive runs get through any backlog.
_UNALERTED_SILENT_TRIPS = text(
    """
    SELECT trip.id, trip.owner_id, trip.device_id, silence.last_fix
    FROM trips AS trip
    CROSS JOIN LATERAL (
        SELECT coalesce(trip.last_seen_at, trip.started_at) AS last_fix
    ) AS silence
    WHERE trip.status = 'active'
      AND silence.last_fix < :silent_since
      AND NOT EXISTS (
        SELECT FROM alerts
        WHERE alerts.dedupe_key = 'lost_signal:' || trip.id::text || ':'
            || floor(extract(epoch FROM silence.last_fix))::bigint::text
      )
    ORDER BY silence.last_fix, trip.id
    LIMIT :limit
    """
)


class SilentTrip(NamedTuple):
    """An active trip whose device has been silent since `last_fix`."""

    id: uuid.UUID
    owner_id: uuid.UUID
    device_id: uuid.UUID | None
    last_fix: datetime


async def unalerted_silent_trips(
    *, session: AsyncSession, silent_for: timedelta, limit: int, now: datetime
) -> list[SilentTrip]:
    """Up to `limit` active trips with no fix for `silent_for` (counted from the trip's start
    if it never had one) whose silence has no alert yet, the longest silent first."""
    rows = await session.execute(
        _UNALERTED_SILENT_TRIPS, {"silent_since": now - silent_for, "limit": limit}
    )
    return [SilentTrip(*row) for row in rows.all()]


async def raise_lost_signal_alerts(
    *, session: AsyncSession, queue: JobQueue, silent_for: timedelta, limit: int, now: datetime
) -> list[AlertEvent]:
    """Raise the lost-signal alert of up to `limit` silent trips not yet alerted (the longest
    silent first; the rest are the next runs'), in one insert; returns the new alerts, to
    publish after commit.

    One alert per silence: the dedupe key holds the time of the last fix.
    """
    silent = await unalerted_silent_trips(
        session=session, silent_for=silent_for, limit=limit, now=now
    )
    return await raise_alerts(
        session=session,
        queue=queue,
        drafts=[
            (
                AlertTarget(owner_id=trip.owner_id, trip_id=trip.id, device_id=trip.device_id),
                lost_signal_alert(trip.id, trip.last_fix, now),
            )
            for trip in silent
        ],
        request_id=get_request_id(),
        now=now,
    )
