"""Telemetry tables: batches accepted by ingest and the position events they carry."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Identity,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlmodel import Field

from tripline_common.data.models.base import (
    TriplineModel,
    UTCDateTime,
    created_at_field,
    enum_check,
    enum_field,
    lat_lon_checks,
    timestamp_field,
    utcnow,
    uuid_pk_field,
)


class BatchStatus(StrEnum):
    """Processing state: the worker moves a batch from `pending` to `processed` or `failed`."""

    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class TelemetryBatch(TriplineModel, table=True):
    """One upload from a device, written with its events in one transaction, then enqueued.

    The row is the durable record of the work: the sweeper re-enqueues batches still `pending`
    after a while (Redis was down, the process died), and `client_batch_id` makes a device's
    retried upload a no-op instead of a duplicate.
    """

    __tablename__ = "telemetry_batches"
    __table_args__ = (
        UniqueConstraint("device_id", "client_batch_id"),
        enum_check("status", BatchStatus),
        CheckConstraint("event_count >= 0", name="event_count_non_negative"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        # The sweeper: `WHERE status = 'pending' AND received_at < now() - interval ...`.
        Index("ix_telemetry_batches_status_received_at", "status", "received_at"),
        {"comment": "Telemetry uploads; the unit of work of the telemetry pipeline."},
    )

    id: uuid.UUID = uuid_pk_field()
    device_id: uuid.UUID = Field(foreign_key="devices.id", ondelete="CASCADE")
    client_batch_id: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "The device's own id for the upload; retries reuse it."},
    )
    status: BatchStatus = enum_field(BatchStatus, BatchStatus.PENDING)
    event_count: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    attempts: int = Field(
        default=0,
        sa_column_kwargs={
            "server_default": text("0"),
            "comment": "Processing attempts so far; lets the sweeper give up on poison batches.",
        },
    )
    received_at: datetime = created_at_field(comment="When ingest accepted the upload.")
    processed_at: datetime | None = timestamp_field()
    request_id: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "Correlation id of the ingest request (X-Request-ID)."},
    )
    error: str | None = Field(
        default=None, sa_type=Text, sa_column_kwargs={"comment": "Why it failed."}
    )


class TelemetryEvent(TriplineModel, table=True):
    """One position fix of a device. High volume: BIGINT identity key, no UUID, and the table
    is partitioned by day of `received_at` (revision 0011): retention drops whole days.

    The partitions are the worker's (`tripline_worker.telemetry.partitions`): created ahead,
    dropped past retention; a DEFAULT partition takes what no day partition covers. `batch_id`
    and `trip_id` are plain references, without foreign keys: ingest writes a batch and its
    events in one transaction and retention removes them together, and deleting a trip must
    not rewrite its events (an export reads them only through a trip that exists).
    """

    __tablename__ = "telemetry_events"
    __table_args__ = (
        *lat_lon_checks(),
        CheckConstraint("speed_kmh >= 0", name="speed_non_negative"),
        CheckConstraint("heading_deg >= 0 AND heading_deg < 360", name="heading_range"),
        CheckConstraint("accuracy_m >= 0", name="accuracy_non_negative"),
        Index("ix_telemetry_events_device_id_recorded_at", "device_id", "recorded_at"),
        # The worker's attach (`batch_id`, pruned to recent days by `received_at`).
        Index("ix_telemetry_events_batch_id", "batch_id"),
        # The export's keyset order: a page is read from the index, never sorted.
        Index("ix_telemetry_events_trip_id_recorded_at_id", "trip_id", "recorded_at", "id"),
        {
            "comment": "Position fixes reported by devices; partitioned by day of received_at.",
            "postgresql_partition_by": "RANGE (received_at)",
        },
    )

    # The primary key must hold the partition key: `(id, received_at)`; `id` alone is unique.
    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger, sa_column_args=[Identity()]
    )
    batch_id: uuid.UUID
    device_id: uuid.UUID = Field(foreign_key="devices.id", ondelete="CASCADE")
    trip_id: uuid.UUID | None = Field(
        default=None,
        sa_column_kwargs={"comment": "Active trip the worker attached the event to, if any."},
    )
    recorded_at: datetime = timestamp_field(required=True, comment="Device clock, UTC.")
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = Field(
        default=None, sa_column_kwargs={"comment": "Direction of travel, degrees from north."}
    )
    accuracy_m: float | None = Field(
        default=None, sa_column_kwargs={"comment": "Horizontal accuracy radius (m)."}
    )
    received_at: datetime = Field(
        default_factory=utcnow,
        primary_key=True,
        sa_type=UTCDateTime(),
        nullable=False,
        sa_column_kwargs={
            "server_default": func.now(),
            "comment": "When ingest accepted the event's batch: the partition key.",
        },
    )
