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
from operator import attrgetter

import asyncpg
from asyncpg import Record
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data import SessionFactory, driver_connection
from tripline_common.data.models import (
    AlertRule,
    BatchStatus,
    TelemetryBatch,
    TripStatus,
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
    used up its attempts (it is then marked failed, just after the count is committed).
    """
    async with session_factory() as session, session.begin():
        # Plain SQL on the session's connection, a statement that commits by itself: it runs
        # for every batch (the ORM's update path cost more than the rest, a transaction
        # around it two more round trips).
        connection = await driver_connection(session, begin=False)
        attempts = await connection.fetchval(_COUNT_ATTEMPT, batch_id, BatchStatus.PENDING)
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


_COUNT_ATTEMPT = (
    "UPDATE telemetry_batches SET attempts = attempts + 1"
    " WHERE id = $1 AND status = $2 RETURNING attempts"
)


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
    transaction. Webhook jobs for new alerts are deferred until that transaction commits.

    The statements run on the session's own asyncpg connection, inside its transaction (the
    same rows are read and written as through the ORM): this runs for every batch, and the
    ORM's statement building and row handling cost more CPU than the rules themselves
    (docs/performance.md, "Worker and queue latency")."""
    connection = await driver_connection(session)
    # NO KEY UPDATE: does not block the FK checks of rows that reference this one.
    batch = await connection.fetchrow(_LOCK_BATCH, batch_id)
    if batch is None:
        return BatchOutcome("missing")
    if batch["status"] != BatchStatus.PENDING:
        return BatchOutcome("already_processed")

    now = datetime.now(UTC)
    # The device's one active trip (a partial unique index guarantees there is at most one),
    # locked: batches of one device are applied one at a time, so distance adds up.
    trip = await connection.fetchrow(_LOCK_ACTIVE_TRIP, batch["device_id"], TripStatus.ACTIVE)
    attached = 0
    alerts: list[AlertEvent] = []
    if trip is not None:
        fixes = await _attach_events(connection, batch_id, batch["received_at"], trip)
        attached = len(fixes)
        if fixes:
            drafts = await _advance_trip(connection, trip, fixes, settings, now)
            target = AlertTarget(
                owner_id=trip["owner_id"], trip_id=trip["id"], device_id=batch["device_id"]
            )
            alerts = await raise_alerts(
                session=session,
                queue=queue,
                drafts=[(target, draft) for draft in drafts],
                request_id=batch["request_id"],
                now=now,
            )
    await connection.execute(_MARK_PROCESSED, batch_id, BatchStatus.PROCESSED, now)
    return BatchOutcome(
        "processed",
        events=batch["event_count"],
        attached=attached,
        alerts=alerts,
        received_at=batch["received_at"],
    )


_LOCK_BATCH = (
    "SELECT device_id, status, event_count, request_id, received_at"
    " FROM telemetry_batches WHERE id = $1 FOR NO KEY UPDATE"
)
_LOCK_ACTIVE_TRIP = (
    "SELECT id, owner_id, started_at, planned_arrival, speed_limit_kmh, corridor_m,"
    " origin_lat, origin_lon, destination_lat, destination_lon,"
    " last_lat, last_lon, last_seen_at, distance_m, eta,"
    # The waypoints in the same round trip, in route order.
    " ARRAY(SELECT ARRAY[lat, lon] FROM waypoints WHERE trip_id = trips.id ORDER BY seq)"
    " AS waypoints"
    " FROM trips WHERE device_id = $1 AND status = $2 FOR NO KEY UPDATE"
)
_ATTACH = (
    "UPDATE telemetry_events SET trip_id = $1"
    " WHERE batch_id = $2 AND received_at >= $3 AND received_at <= now() + $4::interval"
    "{since} RETURNING recorded_at, lat, lon, speed_kmh, accuracy_m"
)
_ATTACH_ALL = _ATTACH.format(since="")
_ATTACH_SINCE_START = _ATTACH.format(since=" AND recorded_at >= $5")
# The previous release (before migration 0007) writes no `observed_at`, and it still serves
# after the pre-upgrade hook added the column, or again after a rollback: its alerts' first fix
# is in their `details` (tests/test_previous_release.py).
_WINDOWS_RAISED = """
    SELECT rule, anchor FROM (
        SELECT rule, coalesce(observed_at, CAST(details ->> 'first_at' AS timestamptz)) AS anchor
        FROM alerts WHERE trip_id = $1 AND rule = ANY($2::varchar[])
    ) AS raised
    WHERE anchor > $3 AND anchor < $4
""".strip()  # Spans and logs show the statement from its first word.
# The columns the ORM's unit of work would write, `updated_at` as its `onupdate` sets it.
_UPDATE_PROGRESS = (
    "UPDATE trips SET last_lat = $2, last_lon = $3, last_seen_at = $4, distance_m = $5,"
    " eta = $6, updated_at = $7 WHERE id = $1"
)
_MARK_PROCESSED = (
    "UPDATE telemetry_batches SET status = $2, processed_at = $3, error = NULL WHERE id = $1"
)
_WINDOWED_RULES = [AlertRule.SPEEDING.value, AlertRule.CORRIDOR.value]


async def _attach_events(
    connection: asyncpg.Connection, batch_id: uuid.UUID, received_at: datetime, trip: Record
) -> list[Fix]:
    """Set the trip on the batch's events recorded since the trip started; return them, sorted.

    The bounds on `received_at` confine the statement to the partitions from the batch's day to
    today (with the DEFAULT and any legacy one), not the days ahead: the events carry their
    batch's time, or, written by the previous release, their transaction's (`RECEIVED_AT_SLACK`
    covers two hosts' clocks), or, for a batch still pending when revision 0009 ran, that
    revision's time: later than the batch's, never in the future."""
    bounds = (trip["id"], batch_id, received_at - RECEIVED_AT_SLACK, RECEIVED_AT_SLACK)
    if trip["started_at"] is None:
        rows = await connection.fetch(_ATTACH_ALL, *bounds)
    else:
        rows = await connection.fetch(_ATTACH_SINCE_START, *bounds, trip["started_at"])
    fixes = [Fix(*row) for row in rows]
    fixes.sort(key=_recorded_at)
    return fixes


_recorded_at = attrgetter("recorded_at")


async def _advance_trip(
    connection: asyncpg.Connection,
    trip: Record,
    fixes: list[Fix],
    settings: WorkerServiceSettings,
    now: datetime,
) -> list[AlertDraft]:
    """Move the trip's progress on by `fixes` (written at once); return the alerts they call
    for."""
    trip_id = trip["id"]
    waypoints = trip["waypoints"]
    route = Route(
        [
            (trip["origin_lat"], trip["origin_lon"]),
            *((lat, lon) for lat, lon in waypoints),
            (trip["destination_lat"], trip["destination_lon"]),
        ]
    )
    before = TripProgress(
        last_lat=trip["last_lat"],
        last_lon=trip["last_lon"],
        last_seen_at=trip["last_seen_at"],
        distance_m=trip["distance_m"],
        eta=trip["eta"],
    )
    after = advance_progress(before, fixes, route, trip["started_at"])
    if after is not before:
        await connection.execute(
            _UPDATE_PROGRESS,
            trip_id,
            after.last_lat,
            after.last_lon,
            after.last_seen_at,
            after.distance_m,
            after.eta,
            now,
        )

    window = settings.alert_window_seconds
    raised = await _windows_raised(connection, trip_id, fixes, window)
    drafts: list[AlertDraft] = []
    if trip["speed_limit_kmh"] is not None:
        drafts += speeding_alerts(
            trip_id, trip["speed_limit_kmh"], fixes, window, raised[AlertRule.SPEEDING]
        )
    if trip["corridor_m"] is not None:
        drafts += corridor_alerts(
            trip_id, trip["corridor_m"], route, fixes, window, raised[AlertRule.CORRIDOR]
        )
    if after is not before and after.last_seen_at is not None:
        late = late_alert(
            trip_id,
            trip["planned_arrival"],
            eta=after.eta,
            last_fix_at=after.last_seen_at,
            remaining_m=after.remaining_m,
            grace_seconds=settings.late_grace_seconds,
        )
        if late is not None:
            drafts.append(late)
    return drafts


async def _windows_raised(
    connection: asyncpg.Connection, trip_id: uuid.UUID, fixes: list[Fix], window_seconds: int
) -> dict[AlertRule, list[datetime]]:
    """The first-fix times of the trip's speeding and corridor alerts near `fixes` (sorted).

    Read under the trip's row lock, so it includes every alert a batch of this trip committed
    before: two batches of one trip are never judged against the same, stale, set of alerts.
    """
    window = timedelta(seconds=window_seconds)
    rows = await connection.fetch(
        _WINDOWS_RAISED,
        trip_id,
        _WINDOWED_RULES,
        fixes[0].recorded_at - window,
        fixes[-1].recorded_at + window,
    )
    raised: dict[AlertRule, list[datetime]] = {AlertRule.SPEEDING: [], AlertRule.CORRIDOR: []}
    for rule, observed_at in rows:
        raised[AlertRule(rule)].append(observed_at)
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
