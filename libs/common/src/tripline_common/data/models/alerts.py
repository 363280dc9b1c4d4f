"""Alert tables: rule violations the worker raises on trips, and their handling by the user."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import QueryableAttribute
from sqlmodel import Field, col

from tripline_common.data.models.base import (
    TriplineModel,
    created_at_field,
    enum_check,
    enum_field,
    mapped_attribute,
    timestamp_field,
    uuid_pk_field,
)


class AlertRule(StrEnum):
    """The trip rule that was broken."""

    SPEEDING = "speeding"
    CORRIDOR = "corridor"
    LATE = "late"
    LOST_SIGNAL = "lost_signal"


class AlertSeverity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    """Handling state: open → acknowledged (someone is on it) → resolved."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Alert(TriplineModel, table=True):
    """A rule violation on a trip, fanned out over REST, WebSocket, SSE and webhooks."""

    __tablename__ = "alerts"
    __table_args__ = (
        enum_check("rule", AlertRule),
        enum_check("severity", AlertSeverity),
        enum_check("status", AlertStatus),
        Index("ix_alerts_owner_id_raised_at", "owner_id", "raised_at"),
        Index("ix_alerts_trip_id_raised_at", "trip_id", "raised_at"),
        Index("ix_alerts_device_id", "device_id"),
        # Lists: (owner, sort key, id) for each sort; a status or rule filter keeps the order.
        Index("ix_alerts_owner_id_rule_id", "owner_id", "rule", "id"),
        Index("ix_alerts_owner_id_status_id", "owner_id", "status", "id"),
        Index("ix_alerts_owner_id_rule_raised_at_id", "owner_id", "rule", "raised_at", "id"),
        Index("ix_alerts_owner_id_status_raised_at_id", "owner_id", "status", "raised_at", "id"),
        # The admin console's alerts per hour (the last day's, whatever their owner or status).
        Index("ix_alerts_raised_at", "raised_at"),
        # The admin overview's latest open alerts.
        Index(
            "ix_alerts_open_raised_at",
            text("raised_at DESC"),
            "id",
            postgresql_where=text("status = 'open'"),
        ),
        {"comment": "Alerts raised by the worker on trips."},
    )

    id: uuid.UUID = uuid_pk_field()
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    trip_id: uuid.UUID = Field(foreign_key="trips.id", ondelete="CASCADE")
    device_id: uuid.UUID | None = Field(default=None, foreign_key="devices.id", ondelete="SET NULL")
    rule: AlertRule = enum_field(AlertRule)
    severity: AlertSeverity = enum_field(AlertSeverity, AlertSeverity.WARNING)
    status: AlertStatus = enum_field(AlertStatus, AlertStatus.OPEN)
    message: str = Field(sa_type=Text, sa_column_kwargs={"comment": "Human-readable summary."})
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={
            "server_default": text("'{}'::jsonb"),
            "comment": "Rule-specific facts (measured speed, limit, distance, ...).",
        },
    )
    dedupe_key: str = Field(
        unique=True,
        sa_type=String(200),
        # Built from the violation (rule, trip and the device time of its first fix; see
        # tripline_worker.alerts.rules). The worker inserts with ON CONFLICT (dedupe_key) DO
        # NOTHING: processing a batch twice raises nothing twice.
        sa_column_kwargs={
            "comment": "Deterministic identity of the violation; makes raising idempotent."
        },
    )
    request_id: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "Correlation id of the request that led to the alert."},
    )
    raised_at: datetime = created_at_field()
    observed_at: datetime | None = timestamp_field(
        comment="Device time of the first fix of a speeding or corridor alert: the start of the "
        "ALERT_WINDOW_SECONDS in which the trip raises no other alert of its rule."
    )
    acknowledged_at: datetime | None = timestamp_field()
    resolved_at: datetime | None = timestamp_field()


ALERT_EVENT_COLUMNS: tuple[QueryableAttribute[Any], ...] = tuple(
    mapped_attribute(column)
    for column in (
        col(Alert.id),
        col(Alert.owner_id),
        col(Alert.trip_id),
        col(Alert.device_id),
        col(Alert.rule),
        col(Alert.severity),
        col(Alert.status),
        col(Alert.message),
        col(Alert.details),
        col(Alert.raised_at),
        col(Alert.request_id),
    )
)
"""The columns an alert event carries (`tripline_common.messaging.pubsub.AlertData`): what the
worker returns when it raises alerts, and what webhook deliveries and the SSE replay read."""
