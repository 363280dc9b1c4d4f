"""Job tables: user-visible background jobs (imports, exports) and their progress."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from tripline_common.data.models.base import (
    TriplineModel,
    created_at_field,
    enum_check,
    enum_field,
    timestamp_field,
    uuid_pk_field,
)


class JobStatus(StrEnum):
    """Lifecycle of a job: queued → running → succeeded, failed or cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Job(TriplineModel, table=True):
    """A background job whose status users or operators can follow (`GET /v1/jobs/{id}`).

    The row is committed before the ARQ job is enqueued (with `arq_job_id` as its
    deterministic `_job_id`), so a job lost between Postgres and Redis can be found and
    re-enqueued, and enqueueing it twice is harmless.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        enum_check("status", JobStatus),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
        Index("ix_jobs_created_at_id", "created_at", "id"),  # The admin's list.
        {"comment": "Background jobs users and operators can follow."},
    )

    id: uuid.UUID = uuid_pk_field()
    owner_id: uuid.UUID | None = Field(
        default=None,
        foreign_key="users.id",
        ondelete="SET NULL",
        sa_column_kwargs={"comment": "Who started it; NULL for system jobs or deleted users."},
    )
    kind: str = Field(
        sa_type=String(64),
        sa_column_kwargs={"comment": "The worker function, e.g. import_trips, export_trips."},
    )
    status: JobStatus = enum_field(JobStatus, JobStatus.QUEUED)
    arq_job_id: str = Field(
        unique=True,
        sa_type=String(128),
        sa_column_kwargs={"comment": "The ARQ `_job_id` (deterministic, derived from id)."},
    )
    progress: int = Field(
        default=0,
        sa_column_kwargs={"server_default": text("0"), "comment": "Percent done, 0-100."},
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={
            "server_default": text("'{}'::jsonb"),
            "comment": "Inputs of the job; the worker function reads them by the job's id.",
        },
    )
    result: dict[str, Any] | None = Field(
        default=None,
        # none_as_null: Python None is stored as SQL NULL, not as the JSON value `null`.
        sa_type=JSONB(none_as_null=True),
        sa_column_kwargs={"comment": "Outcome for the client (counts, a download link...)."},
    )
    error: str | None = Field(default=None, sa_type=Text)
    request_id: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "Correlation id of the request that enqueued the job."},
    )
    created_at: datetime = created_at_field()
    started_at: datetime | None = timestamp_field()
    finished_at: datetime | None = timestamp_field()
