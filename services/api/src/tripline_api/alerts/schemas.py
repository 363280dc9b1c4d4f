"""Request and response models of the alerts resource. Alerts are raised by the worker, so
there is no create model: clients only read them and move them along open -> acknowledged ->
resolved."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tripline_common.data.models import AlertRule, AlertSeverity, AlertStatus
from tripline_common.platform import ErrorResponse
from tripline_common.web import IsoDateTime, Page, selectable

MAX_BULK_ALERTS = 100


PUBLIC_EXAMPLE: dict[str, Any] = {
    "id": "6a1f0c3e-2b4d-4e5f-8a9b-0c1d2e3f4a5b",
    "trip_id": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "device_id": "3c2b1a09-8f7e-4d6c-9b5a-1f2e3d4c5b6a",
    "rule": "speeding",
    "severity": "warning",
    "status": "open",
    "message": "142 km/h where the limit is 130 km/h.",
    "details": {"speed_kmh": 142.0, "limit_kmh": 130.0},
    "raised_at": "2026-11-26T12:00:00Z",
    "acknowledged_at": None,
    "resolved_at": None,
    "request_id": "9f8e7d6c5b4a",
}


class AlertPublic(BaseModel):
    """An alert as the API shows it."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [PUBLIC_EXAMPLE]}
    )

    id: uuid.UUID = Field(description="The alert's ID.")
    trip_id: uuid.UUID = Field(description="The trip on which the rule was broken.")
    device_id: uuid.UUID | None = Field(
        description="The device that reported it; null if the device was deleted since."
    )
    rule: AlertRule = Field(description="The broken rule: speeding, corridor, late, lost_signal.")
    severity: AlertSeverity = Field(description="info, warning or critical.")
    status: AlertStatus = Field(description="open -> acknowledged -> resolved.")
    message: str = Field(description="A human-readable summary.")
    details: dict[str, Any] = Field(
        description="Rule-specific facts (measured speed, limit, distance from the corridor...)."
    )
    raised_at: datetime = Field(description="When the worker raised it (UTC).")
    acknowledged_at: datetime | None = Field(description="When it was acknowledged.")
    resolved_at: datetime | None = Field(description="When it was resolved.")
    request_id: str | None = Field(
        description="Correlation ID of the telemetry upload that led to it (for support)."
    )


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    AlertListItem = AlertPublic
else:
    AlertListItem = selectable(AlertPublic, name="AlertListItem")


class AlertPage(Page[AlertListItem]):
    """A page of alerts."""


class AlertFilters(BaseModel):
    """Filters of the alert list; they combine with AND."""

    status: list[AlertStatus] = Field(
        default_factory=list,
        max_length=3,
        description="Only alerts in these statuses; repeat for several (`status=open&"
        "status=acknowledged`).",
    )
    rule: list[AlertRule] = Field(
        default_factory=list, max_length=4, description="Only alerts of these rules; repeatable."
    )
    trip_id: uuid.UUID | None = Field(default=None, description="Only alerts of this trip.")
    raised_from: IsoDateTime | None = Field(
        default=None,
        description="Only alerts raised at or after this time (inclusive).",
        examples=["2026-11-01T00:00:00Z"],
    )
    raised_to: IsoDateTime | None = Field(
        default=None,
        description="Only alerts raised before this time (exclusive). With `raised_from`, it "
        "must be later than `raised_from`: an equal or earlier one is a 422.",
        examples=["2026-12-01T00:00:00Z"],
    )

    @model_validator(mode="after")
    def _range_in_order(self) -> Self:
        if self.raised_from and self.raised_to and self.raised_to <= self.raised_from:
            raise ValueError("raised_to must be later than raised_from")
        return self


class AlertBulkAcknowledge(BaseModel):
    """Alerts to acknowledge at once."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"ids": [PUBLIC_EXAMPLE["id"]]}]}
    )

    ids: list[uuid.UUID] = Field(
        min_length=1,
        max_length=MAX_BULK_ALERTS,
        description=f"1 to {MAX_BULK_ALERTS} alert IDs. Each is handled on its own: an unknown "
        "or resolved alert fails alone.",
    )


class AlertBulkItemResult(BaseModel):
    """The outcome of one ID of a bulk acknowledge."""

    index: int = Field(description="Position of the ID in the request, from 0.", examples=[0])
    id: uuid.UUID = Field(description="The alert ID as sent.")
    status: int = Field(
        description="What acknowledging this alert alone would have answered: 200, 404 or 409.",
        examples=[200],
    )
    alert: AlertPublic | None = Field(description="The alert after the change, on 200.")
    error: ErrorResponse | None = Field(
        description="Why this item failed, in the shared error shape; null on success."
    )


class AlertBulkResult(BaseModel):
    """Per-item results of `POST /v1/alerts/acknowledge` (HTTP 207)."""

    succeeded: int = Field(description="Alerts now acknowledged.", examples=[2])
    failed: int = Field(description="IDs refused (unknown, or already resolved).", examples=[1])
    results: list[AlertBulkItemResult] = Field(description="One result per ID, in order.")
