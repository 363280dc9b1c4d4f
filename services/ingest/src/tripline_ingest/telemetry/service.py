"""Telemetry intake: authenticate devices, store a batch durably, then queue its processing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.apikeys import hash_api_key
from tripline_common.correlation import get_request_id
from tripline_common.errors import UnauthorizedError, UnprocessableError
from tripline_common.models import BatchStatus, Device, TelemetryBatch, TelemetryEvent
from tripline_common.queue import PROCESS_BATCH, JobQueue, process_batch_job_id
from tripline_ingest.settings import IngestSettings
from tripline_ingest.telemetry.schemas import BatchAccepted, TelemetryBatchIn


async def authenticate_device(*, session: AsyncSession, api_key: str | None) -> Device:
    """The active device owning `api_key`, or 401."""
    if not api_key:
        raise UnauthorizedError("Send the device's API key in the X-Device-Key header.")
    device = await session.scalar(
        select(Device).where(
            Device.api_key_hash == hash_api_key(api_key),
            Device.revoked_at.is_(None),  # type: ignore[union-attr]
        )
    )
    if device is None:
        raise UnauthorizedError("Unknown or revoked device key.", code="invalid_device_key")
    return device


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


async def store_batch(
    *, session: AsyncSession, queue: JobQueue, device: Device, batch: TelemetryBatchIn
) -> BatchAccepted:
    """Write the batch and its events in the request's transaction; queue processing after commit.

    A batch whose `client_batch_id` this device already sent is not stored again: the first
    batch is returned, marked `duplicate`.
    """
    now = datetime.now(UTC)
    batch_id = uuid.uuid4()
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
        .returning(TelemetryBatch.id)
    )
    if inserted is None:
        existing = await session.scalar(
            select(TelemetryBatch).where(
                TelemetryBatch.device_id == device.id,
                TelemetryBatch.client_batch_id == batch.client_batch_id,
            )
        )
        assert existing is not None
        return BatchAccepted(
            batch_id=existing.id,
            status=existing.status,
            event_count=existing.event_count,
            duplicate=True,
            received_at=existing.received_at,
        )

    await session.execute(
        insert(TelemetryEvent),
        [
            {
                "batch_id": batch_id,
                "device_id": device.id,
                "recorded_at": event.recorded_at,
                "lat": event.lat,
                "lon": event.lon,
                "speed_kmh": event.speed_kmh,
                "heading_deg": event.heading_deg,
                "accuracy_m": event.accuracy_m,
            }
            for event in batch.events
        ],
    )
    await session.execute(update(Device).where(Device.id == device.id).values(last_seen_at=now))
    queue.enqueue_after_commit(
        session, PROCESS_BATCH, str(batch_id), job_id=process_batch_job_id(batch_id)
    )
    return BatchAccepted(
        batch_id=batch_id,
        status=BatchStatus.PENDING,
        event_count=len(batch.events),
        duplicate=False,
        received_at=now,
    )
