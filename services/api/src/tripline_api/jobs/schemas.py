"""The job resource clients poll."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tripline_common.data.models import JobStatus


class JobPublic(BaseModel):
    """A background job of yours (an import, say) and how far it is."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "5f0c8a3e-1d2b-4c5d-9e6f-7a8b9c0d1e2f",
                    "kind": "import_waypoints",
                    "status": "succeeded",
                    "progress": 100,
                    "result": {"imported": 12},
                    "error": None,
                    "request_id": "01J9Z7Q0A1B2C3D4E5F6G7H8J9",
                    "created_at": "2026-11-26T23:20:00Z",
                    "started_at": "2026-11-26T23:20:01Z",
                    "finished_at": "2026-11-26T23:20:02Z",
                }
            ]
        },
    )

    id: uuid.UUID = Field(description="The job's ID.")
    kind: str = Field(description="What the job does.", examples=["import_waypoints"])
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    progress: int = Field(description="Percent done, 0-100.", examples=[50])
    result: dict[str, Any] | None = Field(
        description="What the job produced, once succeeded.", examples=[{"imported": 12}]
    )
    error: str | None = Field(
        description="Why the job failed (safe to show; may list problems by line).",
        examples=["line 3: lat must be between -90 and 90"],
    )
    request_id: str | None = Field(
        description="Correlation ID of the request that started it (quote it when reporting)."
    )
    created_at: datetime = Field(description="When the job was queued.")
    started_at: datetime | None = Field(description="When its (latest) run started.")
    finished_at: datetime | None = Field(description="When it ended.")
