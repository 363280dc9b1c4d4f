"""Response models of the queues resource."""

from __future__ import annotations

from pydantic import BaseModel, Field


class QueueStats(BaseModel):
    """The state of one ARQ queue."""

    queue: str = Field(description="Queue name in Redis.")
    queued: int = Field(description="Jobs in the queue, due or deferred.")
    due: int = Field(description="Jobs whose time has come and that wait for a worker.")
    oldest_due_age_seconds: float = Field(description="How long the oldest due job has waited.")
    in_progress: int = Field(description="Jobs a worker is running now.")
