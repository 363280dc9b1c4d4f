"""The overview charts' data: evenly spaced series of recent figures."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class Series(BaseModel):
    """One figure over time: `values[i]` is for the slot starting `start + i * step_seconds`;
    None where nothing was sampled (the queue's depth before a monitor ran)."""

    start: datetime = Field(description="Start of the first slot (UTC).")
    step_seconds: int = Field(description="Length of each slot.")
    values: list[float | None] = Field(description="One value per slot, oldest first.")


class Activity(BaseModel):
    """The overview's charts: telemetry throughput, queue depth and alerts raised."""

    as_of: datetime = Field(description="When these figures were read (UTC).")
    accepted_per_second: Series = Field(description="Events ingest accepted, per second.")
    processed_per_second: Series = Field(description="Events the worker processed, per second.")
    queue_depth: Series = Field(description="Jobs waiting in the queue (ready or deferred).")
    alerts_per_hour: Series = Field(description="Alerts raised, per hour.")
