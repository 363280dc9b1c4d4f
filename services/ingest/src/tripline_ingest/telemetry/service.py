"""Telemetry intake: check a batch, store it durably with COPY, queue its processing, report it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data import driver_connection
from tripline_common.data.models import BatchStatus, Device, TelemetryBatch, TelemetryEvent
from tripline_common.messaging import PROCESS_BATCH, JobQueue
from tripline_common.platform import NotFoundError, UnprocessableError, get_request_id
from tripline_ingest.settings import IngestSettings
from tripline_ingest.state import IngestState
from tripline_ingest.telemetry.devices import AuthenticatedDevice
from tripline_ingest.telemetry.schemas import BatchAccepted, BatchStatusOut, TelemetryBatchIn

# Column order of the COPY records below.
EVENT_COLUMNS = (
    "batch_id",
    "device_id",
    "recorded_at",
    "lat",
    "lon",
    "speed_kmh",
    "heading_deg",
    "accuracy_m",
    "received_at",
)


def validate_batch(batch: TelemetryBatchIn, settings: IngestSettings) -> None:
    """Checks that need settings: the batch size, and event times not too far in the future
    (device clocks drift, but not by days). Raises a 422 with one entry per bad event."""
    if len(batch.events) > settings.max_batch_events:
        raise UnprocessableError(
            f"A batch holds at most {settings.max_batch_events} events.",
            code="batch_too_large",
            details={"max_events": settings.max_batch_events, "received": len(batch.events)},
        )
    limit = datetime.now(UTC) + timedelta(seconds=settings.max_future_skew_seconds)
    errors: list[dict[str, Any]] = [
        {
            "loc": ["body", "events", index, "recorded_at"],
            "msg": "is in the future",
            "type": "future",
        }
        for index, event in enumerate(batch.events)
        if event.recorded_at > limit
    ]
    if errors:
        raise UnprocessableError(
            "Some events are not valid; see details.", code="invalid_events", details=errors
        )


async def accept_batch(
    *,
    session: AsyncSession,
    queue: JobQueue,
    state: IngestState,
    device: AuthenticatedDevice,
    batch: TelemetryBatchIn,
) -> BatchAccepted:
    """Store an upload (see `store_batch`) and count it."""
    accepted = await store_batch(
        session=session,
        queue=queue,
        device=device,
        batch=batch,
        touch_last_seen=state.last_seen.due(device.id),
    )
    if accepted.duplicate:
        state.metrics.batches.labels("duplicate").inc()
    else:
        state.metrics.batches.labels("stored").inc()
        state.metrics.events_accepted.inc(accepted.event_count)
    return accepted


async def store_batch(
    *,
    session: AsyncSession,
    queue: JobQueue,
    device: AuthenticatedDevice,
    batch: TelemetryBatchIn,
    touch_last_seen: bool = True,
) -> BatchAccepted:
    """Write the batch row and its events in the session's transaction (events by COPY) and
    queue processing after commit.

    A batch whose `client_batch_id` this device already sent is not stored again: the first
    one is returned, marked `duplicate`. `touch_last_seen` also records the device as seen.
    """
    now = datetime.now(UTC)
    batch_id = uuid.uuid4()
    # The batch row goes first, through SQLAlchemy: this opens the transaction that the COPY
    # on the same connection then joins.
    inserted = await session.scalar(
        pg_insert(TelemetryBatch)
        .values(
            id=batch_id,
            device_id=device.id,
            client_batch_id=batch.client_batch_id,
            event_count=len(batch.events),
            received_at=now,
            request_id=get_request_id(),
        )
        .on_conflict_do_nothing(index_elements=["device_id", "client_batch_id"])
        .returning(col(TelemetryBatch.id))
    )
    if inserted is None:
        existing = await session.scalar(
            select(TelemetryBatch).where(
                col(TelemetryBatch.device_id) == device.id,
                col(TelemetryBatch.client_batch_id) == batch.client_batch_id,
            )
        )
        assert existing is not None  # The conflict that stopped the insert is committed.
        return BatchAccepted(
            batch_id=existing.id,
            status=existing.status,
            event_count=existing.event_count,
            duplicate=True,
            received_at=existing.received_at,
        )

    connection = await driver_connection(session)
    await connection.copy_records_to_table(
        TelemetryEvent.__tablename__,
        columns=EVENT_COLUMNS,
        records=[
            (
                batch_id,
                device.id,
                event.recorded_at,
                event.lat,
                event.lon,
                event.speed_kmh,
                event.heading_deg,
                event.accuracy_m,
                now,  # The batch's own: its events land in the partition of its day.
            )
            for event in batch.events
        ],
    )
    if touch_last_seen:
        await session.execute(
            update(Device)
            .where(
                col(Device.id) == device.id,
                or_(col(Device.last_seen_at).is_(None), col(Device.last_seen_at) < now),
            )
            .values(last_seen_at=now)
        )
    queue.enqueue_after_commit(
        session, PROCESS_BATCH.name, str(batch_id), job_id=PROCESS_BATCH.job_id(batch_id)
    )
    return BatchAccepted(
        batch_id=batch_id,
        status=BatchStatus.PENDING,
        event_count=len(batch.events),
        duplicate=False,
        received_at=now,
    )


async def get_batch(
    *, session: AsyncSession, device: AuthenticatedDevice, batch_id: uuid.UUID
) -> BatchStatusOut:
    """The device's own batch, or 404 (another device's batch does not exist for it)."""
    row = await session.scalar(
        select(TelemetryBatch).where(
            col(TelemetryBatch.id) == batch_id, col(TelemetryBatch.device_id) == device.id
        )
    )
    if row is None:
        raise NotFoundError("Batch not found.")
    return BatchStatusOut(
        batch_id=row.id,
        client_batch_id=row.client_batch_id,
        status=row.status,
        event_count=row.event_count,
        received_at=row.received_at,
        processed_at=row.processed_at,
    )
