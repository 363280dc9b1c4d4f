"""Response models of the overview: the numbers an operator looks at first."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tripline_admin.jobs.schemas import Failure
from tripline_admin.queues.schemas import QueueStats
from tripline_common.data.models import AlertRule, AlertSeverity

# A count is exact up to this many; past it a working set reads "at least" and a table is
# estimated. An overview needs the order of magnitude there; the lists give the rows.
COUNT_CAP = 1000


class Counts(BaseModel):
    """How many of each thing there are; `estimated` and `at_least` name the inexact counts."""

    users: int = Field(description="Accounts.")
    users_disabled: int = Field(description="Disabled accounts.")
    staff: int = Field(description="Operators and admins.")
    sessions_live: int = Field(description="Sessions neither revoked nor expired.")
    devices_active: int = Field(description="Devices whose key works.")
    devices_revoked: int = Field(description="Devices whose key is revoked.")
    trips_active: int = Field(description="Trips under way.")
    alerts_open: int = Field(description="Alerts nobody has acknowledged yet.")
    jobs_queued: int = Field(description="Tracked jobs waiting.")
    jobs_running: int = Field(description="Tracked jobs running.")
    jobs_failed: int = Field(description="Tracked jobs that failed (all time).")
    batches_pending: int = Field(description="Telemetry batches waiting to be processed.")
    batches_failed: int = Field(description="Telemetry batches given up on (all time).")
    estimated: list[str] = Field(
        description="The counts above that are estimates from the database's statistics (as "
        "of its last ANALYZE), not counted: those of users and devices once their table holds "
        f"more than {COUNT_CAP} rows."
    )
    at_least: list[str] = Field(
        description=f"The counts above that stopped at {COUNT_CAP}: there are at least that many."
    )


class RecentAlert(BaseModel):
    """An open alert, for the overview."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The alert's ID.")
    rule: AlertRule = Field(description="The rule that was broken.")
    severity: AlertSeverity = Field(description="info, warning or critical.")
    message: str = Field(description="What happened.")
    owner_email: str = Field(description="Whose trip it is.")
    trip_id: uuid.UUID = Field(description="The trip.")
    request_id: str | None = Field(description="Correlation ID of the telemetry that raised it.")
    raised_at: datetime = Field(description="When it was raised (UTC).")


class Overview(BaseModel):
    """Counts, queue health, open alerts and recent failures, in one call."""

    as_of: datetime = Field(
        description="When these figures were read (UTC): an answer is cached, and may be up to "
        "OVERVIEW_CACHE_SECONDS old."
    )
    counts: Counts = Field(description="How many of each thing there are now.")
    queues: list[QueueStats] = Field(description="Health of each job queue.")
    recent_alerts: list[RecentAlert] = Field(description="The latest open alerts.")
    recent_failures: list[Failure] = Field(description="The latest failures (see /failures).")
