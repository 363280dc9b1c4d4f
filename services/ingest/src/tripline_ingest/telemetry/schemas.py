"""Request and response models of telemetry intake."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tripline_common.data.models import BatchStatus

# No GPS fix of a Tripline device predates this. The floor keeps every stored time inside
# what Postgres, asyncpg and Python represent after conversion to UTC (a year-1 time with an
# offset overflowed while being stored); the ceiling, now + MAX_FUTURE_SKEW_SECONDS, depends
# on the clock and is checked in `service.validate_batch`.
EARLIEST_RECORDED_AT = datetime(2000, 1, 1, tzinfo=UTC)


class TelemetryEventIn(BaseModel):
    """One position fix as a device reports it."""

    model_config = ConfigDict(extra="forbid")

    # strict: only an ISO 8601 string with an offset is a time (lax mode would read a bare
    # number as seconds since 1970: a client bug, not a time). Strict validation runs in Rust;
    # a Python validator here cost as much as the rest of the parsing together, so the floor
    # is a constraint (checked in Rust too).
    recorded_at: AwareDatetime = Field(
        strict=True,
        ge=EARLIEST_RECORDED_AT,
        description="Device time, ISO 8601 with a UTC offset; from 2000-01-01T00:00:00Z to "
        "MAX_FUTURE_SKEW_SECONDS (default 300) ahead of the server clock.",
    )
    # strict: a JSON `true` is not a number (lax mode would store it as 1).
    lat: float = Field(strict=True, ge=-90, le=90, description="Latitude, WGS 84 degrees.")
    lon: float = Field(strict=True, ge=-180, le=180, description="Longitude, WGS 84 degrees.")
    speed_kmh: float | None = Field(
        None, strict=True, ge=0, le=1500, description="Ground speed, km/h."
    )
    heading_deg: float | None = Field(
        None, strict=True, ge=0, lt=360, description="Degrees from north."
    )
    accuracy_m: float | None = Field(
        None, strict=True, ge=0, le=100_000, description="Accuracy radius, m."
    )


class TelemetryBatchIn(BaseModel):
    """A batch of fixes; `client_batch_id` makes a retried upload count once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_batch_id": "b-000123",
                    "events": [
                        {
                            "recorded_at": "2026-11-26T12:00:00Z",
                            "lat": 52.52,
                            "lon": 13.405,
                            "speed_kmh": 48.5,
                            "heading_deg": 90,
                            "accuracy_m": 5,
                        }
                    ],
                }
            ]
        },
    )

    client_batch_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:\-]+$",
        description="The device's own ID for this upload; resending it is safe.",
    )
    events: list[TelemetryEventIn] = Field(min_length=1, description="The fixes, oldest first.")


class BatchAccepted(BaseModel):
    """The answer to an accepted batch: stored durably, processing queued."""

    batch_id: uuid.UUID = Field(description="ID of the stored batch.")
    status: BatchStatus = Field(description="`pending` until the worker has processed it.")
    event_count: int = Field(description="Events stored in this batch.")
    duplicate: bool = Field(description="True when this `client_batch_id` was already accepted.")
    received_at: datetime = Field(description="When the batch was first accepted (UTC).")


class BatchStatusOut(BaseModel):
    """A batch as its device sees it: where it is in the pipeline."""

    batch_id: uuid.UUID = Field(description="ID of the stored batch.")
    client_batch_id: str | None = Field(description="The device's own ID for the upload.")
    status: BatchStatus = Field(description="`pending`, then `processed` (or `failed`).")
    event_count: int = Field(description="Events stored in this batch.")
    received_at: datetime = Field(description="When ingest accepted it (UTC).")
    processed_at: datetime | None = Field(description="When the worker finished it (UTC).")
