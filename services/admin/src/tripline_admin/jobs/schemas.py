"""Response models of jobs and failures, as operators see them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tripline_common.data import STORABLE_TEXT
from tripline_common.data.models import JobStatus
from tripline_common.web import Page, selectable


class JobFilters(BaseModel):
    """Filters of the job list; they combine with AND."""

    status: list[JobStatus] = Field(
        default_factory=list,
        max_length=5,
        description="Only jobs in these statuses; repeat for several.",
    )
    kind: str | None = Field(
        default=None,
        max_length=64,
        pattern=STORABLE_TEXT,
        description="Only jobs of this kind (the worker function).",
    )


class JobAdmin(BaseModel):
    """A tracked background job (a row of the `jobs` table)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The job's ID.")
    kind: str = Field(description="The worker function, e.g. import_trips.")
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    owner_id: uuid.UUID | None = Field(description="Who started it; null for system jobs.")
    arq_job_id: str = Field(description="Its ARQ job ID in Redis.")
    progress: int = Field(description="Percent done.")
    error: str | None = Field(description="Why it failed, if it did.")
    request_id: str | None = Field(description="Correlation ID of the request that started it.")
    created_at: datetime = Field(description="When it was created (UTC).")
    started_at: datetime | None = Field(description="When a worker last started it.")
    finished_at: datetime | None = Field(description="When it ended.")


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    JobListItem = JobAdmin
else:
    JobListItem = selectable(JobAdmin, name="JobListItem")


class JobPage(Page[JobListItem]):
    """A page of tracked jobs."""


class FailureSource(StrEnum):
    """Where a failure is recorded, which decides how long it is visible and how it is retried.

    - `job`: a tracked job (`jobs` table) that ended `failed`. Durable.
    - `telemetry_batch`: a telemetry batch the worker gave up on (`telemetry_batches`). Durable.
    - `arq`: any other ARQ job that raised, seen in its result in Redis. Ephemeral: visible only
      for the worker's `KEEP_RESULT` seconds.
    """

    JOB = "job"
    TELEMETRY_BATCH = "telemetry_batch"
    ARQ = "arq"


class Failure(BaseModel):
    """A job that failed: what it was, why, when, and the correlation ID to grep for."""

    source: FailureSource = Field(description="job, telemetry_batch or arq (see the list).")
    id: str = Field(
        description="Its ID within the source: the job or batch UUID, or the ARQ job ID."
    )
    kind: str = Field(description="The worker function, e.g. process_batch.")
    error: str = Field(description="The error, as recorded (truncated to 500 characters).")
    request_id: str | None = Field(description="Correlation ID of the work; grep the logs for it.")
    failed_at: datetime | None = Field(description="When it failed (UTC), if known.")
    attempts: int | None = Field(description="Runs so far, if known.")


class FailureList(BaseModel):
    """The most recent failures, newest first, across every source."""

    items: list[Failure] = Field(description="Newest first.")
    arq_result_seconds: int | None = Field(
        description="How long ARQ keeps results, when known: `arq` failures older than this "
        "are gone from Redis (the durable sources keep theirs)."
    )


class RetryAccepted(BaseModel):
    """A failure sent back to the queue."""

    source: FailureSource = Field(description="Where the failure was recorded.")
    id: str = Field(description="Its ID within the source.")
    arq_job_id: str = Field(description="The ARQ job ID it was enqueued under.")
    request_id: str | None = Field(
        description="The correlation ID the retry runs under: the original work's, so one grep "
        "shows the first run and the retry."
    )
