"""Settings of the ingest process."""

from __future__ import annotations

from pydantic import Field

from tripline_common.settings import CommonSettings


class IngestSettings(CommonSettings):
    """Telemetry intake: the shared settings plus batch limits."""

    service_name: str = "ingest"
    port: int = 8002
    max_batch_events: int = Field(1000, ge=1, le=10_000, description="Events per batch, at most.")
    max_future_skew_seconds: int = Field(
        300, ge=0, description="How far ahead of the server clock an event time may be."
    )
