"""Processing one telemetry batch: claim it, then apply it to the device's active trip.

Two transactions:

1. `claim_batch` counts the attempt and commits it at once, so a batch that kills the worker
   every time (it never gets to record an error) is still given up after `max_batch_attempts`.
2. `process_claimed_batch` does the work under row locks on the batch and the trip: attach
   the events to the trip, advance its progress, evaluate the rules, insert the alerts that are
   new, mark the batch processed. All of it commits together or not at all; a second run finds
   the batch processed and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Row, cast, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data import SessionFactory
from tripline_common.data.models import (
    Alert,
    AlertRule,
    BatchStatus,
    TelemetryBatch,
    TelemetryEvent,
    Trip,
    TripStatus,
    Waypoint,
)
from tripline_common.messaging import AlertEvent, JobQueue
from tripline_worker.alerts.rules import (
    AlertDraft,
    corridor_alerts,
    late_alert,
    speeding_alerts,
)
from tripline_worker.alerts.service import AlertTarget, raise_alerts
from tripline_worker.geo import Route
from tripline_worker.settings import WorkerServiceSettings
from tripline_worker.trips.progress import Fix, TripProgress, advance_progress

_ERROR_MAX_LENGTH = 2000
RECEIVED_AT_SLACK = timedelta(hours=1)


@dataclass(frozen=True)
class BatchOutcome:
    """What processing a batch did."""

    status: str
    """`processed`, `already_processed`, `missing` or `gave_up`."""
    events: int = 0
    attached: int = 0
    alerts: list[AlertEvent] = field(default_factory=list)
    received_at: datetime | None = None
    """When ingest accepted the batch (for the pipeline's latency)."""


async def claim_batch(
    *, session_factory: SessionFactory, batch_id: uuid.UUID, max_attempts: int
) -> BatchOutcome | None:
    """Count one processing attempt (committed now). None: go on and process the batch.

    Otherwise the outcome that ends the job: the batch is unknown, no longer pending, or has
    used up its attempts (it is then marked failed).
    """
    async with session_factory() as session, session.begin():
        attempts = await session.scalar(
            update(TelemetryBatch)
            .where(
                col(TelemetryBatch.id) == batch_id,
                col(TelemetryBatch.status) == BatchStatus.PENDING,
            )
            .values(attempts=col(TelemetryBatch.attempts) + 1)
            .returning(col(TelemetryBatch.attempts))
        )
        if attempts is None:
            exists = await session.scalar(
                select(col(TelemetryBatch.id)).where(col(TelemetryBatch.id) == batch_id)
            )
            return BatchOutcome("already_processed" if exists else "missing")
        if attempts > max_attempts:
            await session.execute(
                update(TelemetryBatch)
                .where(col(TelemetryBatch.id) == batch_id)
                .values(
                    status=BatchStatus.FAILED,
                    processed_at=datetime.now(UTC),
                    error=f"Given up after {max_attempts} processing attempts.",
                )
            )
            return BatchOutcome("gave_up")
    return None


async def record_batch_error(
    *, session_factory: SessionFactory, batch_id: uuid.UUID, error: BaseException
) -> None:
    """Note why an attempt failed, for operators (the batch stays pending for a retry)."""
    async with session_factory() as session, session.begin():
        await session.execute(
            update(TelemetryBatch)
            .where(
                col(TelemetryBatch.id) == batch_id,
                col(TelemetryBatch.status) == BatchStatus.PENDING,
            )
            .values(error=f"{type(error).__name__}: {error}"[:_ERROR_MAX_LENGTH])
        )


async def process_claimed_batch(
    *,
    session: AsyncSession,
    queue: JobQueue,
    batch_id: uuid.UUID,
    settings: WorkerServiceSettings,
) -> BatchOutcome:
    """Apply a pending batch to its device's active trip and mark it processed, in `session`'s
    transaction. Webhook jobs for new alerts are deferred until that transaction commits."""
    batch = (
        await session.execute(
            select(
                col(TelemetryBatch.device_id),
                col(TelemetryBatch.status),
                col(TelemetryBatch.event_count),
                col(TelemetryBatch.request_id),
                col(TelemetryBatch.received_at),
            )
            .where(col(TelemetryBatch.id) == batch_id)
            # NO KEY UPDATE: does not block the FK checks of rows that reference this one.
            .with_for_update(key_share=True)
        )
    ).first()
    if batch is None:
        return BatchOutcome("missing")
    if batch.status != BatchStatus.PENDING:
        return BatchOutcome("already_processed")

    now = datetime.now(UTC)
    # The device's one active trip (a partial unique index guarantees there is at most one),
    # locked: batches of one device are applied one at a time, so distance adds up.
    trip = await session.scalar(
        select(Trip)
        .where(col(Trip.device_id) == batch.device_id, col(Trip.status) == TripStatus.ACTIVE)
        .with_for_update(key_share=True)
    )
    attached = 0
    alerts: list[AlertEvent] = []
    if trip is not None:
        fixes = await _attach_events(session, batch_id, batch.received_at, trip)
        attached = len(fixes)
        if fixes:
            drafts = await _advance_trip(session, trip, fixes, settings)
            target = AlertTarget(owner_id=trip.owner_id, trip_id=trip.id, device_id=batch.device_id)
            alerts = await raise_alerts(
                session=session,
                queue=queue,
                drafts=[(target, draft) for draft in drafts],
                request_id=batch.request_id,
                now=now,
            )
    await session.execute(
        update(TelemetryBatch)
        .where(col(TelemetryBatch.id) == batch_id)
        .values(status=BatchStatus.PROCESSED, processed_at=now, error=None)
    )
    return BatchOutcome(
        "processed",
        events=batch.event_count,
        attached=attached,
        alerts=alerts,
        received_at=batch.received_at,
    )


async def _attach_events(
    session: AsyncSession, batch_id: uuid.UUID, received_at: datetime, trip: Trip
) -> list[Fix]:
    """Set the trip on the batch's events recorded since the trip started; return them, sorted.

    The bounds on `received_at` confine the statement to the partitions from the batch's day to
    today (with the DEFAULT and any legacy one), not the days ahead: the events carry their
    batch's time, or, written by the previous release, their transaction's (`RECEIVED_AT_SLACK`
    covers two hosts' clocks), or, for a batch still pending when revision 0009 ran, that
    revision's time: later than the batch's, never in the future."""
    conditions = [
        col(TelemetryEvent.batch_id) == batch_id,
        col(TelemetryEvent.received_at) >= received_at - RECEIVED_AT_SLACK,
        col(TelemetryEvent.received_at) <= func.now() + RECEIVED_AT_SLACK,
    ]
    if trip.started_at is not None:
        conditions.append(col(TelemetryEvent.recorded_at) >= trip.started_at)
    rows = await session.execute(
        update(TelemetryEvent)
        .where(*conditions)
        .values(trip_id=trip.id)
        .returning(
            col(TelemetryEvent.recorded_at),
            col(TelemetryEvent.lat),
            col(TelemetryEvent.lon),
            col(TelemetryEvent.speed_kmh),
            col(TelemetryEvent.accuracy_m),
        )
        .execution_options(synchronize_session=False)
    )
    fixes = [Fix(*row) for row in rows]
    fixes.sort(key=lambda fix: fix.recorded_at)
    return fixes


async def _advance_trip(
    session: AsyncSession, trip: Trip, fixes: list[Fix], settings: WorkerServiceSettings
) -> list[AlertDraft]:
    """Move the trip's progress on by `fixes`; return the alerts they call for."""
    waypoints = (
        await session.execute(
            select(col(Waypoint.lat), col(Waypoint.lon))
            .where(col(Waypoint.trip_id) == trip.id)
            .order_by(col(Waypoint.seq))
        )
    ).all()
    route = Route(
        [
            (trip.origin_lat, trip.origin_lon),
            *((lat, lon) for lat, lon in waypoints),
            (trip.destination_lat, trip.destination_lon),
        ]
    )
    before = TripProgress(
        last_lat=trip.last_lat,
        last_lon=trip.last_lon,
        last_seen_at=trip.last_seen_at,
        distance_m=trip.distance_m,
        eta=trip.eta,
    )
    after = advance_progress(before, fixes, route, trip.started_at)
    if after is not before:
        trip.last_lat, trip.last_lon = after.last_lat, after.last_lon
        trip.last_seen_at = after.last_seen_at
        trip.distance_m = after.distance_m
        trip.eta = after.eta

    window = settings.alert_window_seconds
    raised = await _windows_raised(session, trip.id, fixes, window)
    drafts: list[AlertDraft] = []
    if trip.speed_limit_kmh is not None:
        drafts += speeding_alerts(
            trip.id, trip.speed_limit_kmh, fixes, window, raised[AlertRule.SPEEDING]
        )
    if trip.corridor_m is not None:
        drafts += corridor_alerts(
            trip.id, trip.corridor_m, route, fixes, window, raised[AlertRule.CORRIDOR]
        )
    if after is not before and after.last_seen_at is not None:
        late = late_alert(
            trip.id,
            trip.planned_arrival,
            eta=after.eta,
            last_fix_at=after.last_seen_at,
            remaining_m=after.remaining_m,
            grace_seconds=settings.late_grace_seconds,
        )
        if late is not None:
            drafts.append(late)
    return drafts


async def _windows_raised(
    session: AsyncSession, trip_id: uuid.UUID, fixes: list[Fix], window_seconds: int
) -> dict[AlertRule, list[datetime]]:
    """The first-fix times of the trip's speeding and corridor alerts near `fixes` (sorted).

    Read under the trip's row lock, so it includes every alert a batch of this trip committed
    before: two batches of one trip are never judged against the same, stale, set of alerts.
    """
    window = timedelta(seconds=window_seconds)
    # The previous release (before migration 0007) writes no `observed_at`, and it still serves
    # after the pre-upgrade hook added the column, or again after a rollback: its alerts' first
    # fix is in their `details` (tests/test_previous_release.py).
    anchor = func.coalesce(
        col(Alert.observed_at),
        cast(col(Alert.details).op("->>")("first_at"), DateTime(timezone=True)),
    )
    rows = await session.execute(
        select(col(Alert.rule), anchor).where(
            col(Alert.trip_id) == trip_id,
            col(Alert.rule).in_([AlertRule.SPEEDING, AlertRule.CORRIDOR]),
            anchor > fixes[0].recorded_at - window,
            anchor < fixes[-1].recorded_at + window,
        )
    )
    raised: dict[AlertRule, list[datetime]] = {AlertRule.SPEEDING: [], AlertRule.CORRIDOR: []}
    for rule, observed_at in rows:
        if observed_at is not None:  # The WHERE above excludes nulls; this tells mypy.
            raised[rule].append(observed_at)
    return raised


async def stuck_batches(
    *, session: AsyncSession, pending_for: timedelta, limit: int
) -> Sequence[Row[uuid.UUID, str | None]]:
    """Batches committed but still pending `pending_for` after ingest accepted them (Redis was
    down when ingest enqueued, Redis lost its queue, or a worker died), oldest first:
    `(id, request_id)` rows for the sweeper to enqueue again."""
    rows = await session.execute(
        select(col(TelemetryBatch.id), col(TelemetryBatch.request_id))
        .where(col(TelemetryBatch.status) == BatchStatus.PENDING)
        .where(col(TelemetryBatch.received_at) < datetime.now(UTC) - pending_for)
        .order_by(col(TelemetryBatch.received_at))
        .limit(limit)
    )
    return rows.all()
