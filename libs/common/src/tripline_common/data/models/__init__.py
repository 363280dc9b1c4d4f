"""Tripline's database models (SQLModel tables) by domain; the API models live in the services."""

from tripline_common.data.models.alerts import (
    ALERT_EVENT_COLUMNS,
    Alert,
    AlertRule,
    AlertSeverity,
    AlertStatus,
)
from tripline_common.data.models.audit import AuditLogEntry
from tripline_common.data.models.base import (
    NAMING_CONVENTION,
    TriplineModel,
    mapped_attribute,
    metadata,
    utcnow,
)
from tripline_common.data.models.devices import Device
from tripline_common.data.models.identity import (
    AccountToken,
    AccountTokenPurpose,
    AuthSession,
    SessionKind,
    UsedRefreshToken,
    User,
    UserRole,
)
from tripline_common.data.models.jobs import Job, JobStatus
from tripline_common.data.models.telemetry import BatchStatus, TelemetryBatch, TelemetryEvent
from tripline_common.data.models.trips import (
    ENDED_TRIP_STATUSES,
    Trip,
    TripHistoryTotal,
    TripLiveCount,
    TripStatus,
    Waypoint,
)
from tripline_common.data.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ALERT_EVENT_COLUMNS",
    "ENDED_TRIP_STATUSES",
    "NAMING_CONVENTION",
    "AccountToken",
    "AccountTokenPurpose",
    "Alert",
    "AlertRule",
    "AlertSeverity",
    "AlertStatus",
    "AuditLogEntry",
    "AuthSession",
    "BatchStatus",
    "DeliveryStatus",
    "Device",
    "Job",
    "JobStatus",
    "SessionKind",
    "TelemetryBatch",
    "TelemetryEvent",
    "Trip",
    "TripHistoryTotal",
    "TripLiveCount",
    "TripStatus",
    "TriplineModel",
    "UsedRefreshToken",
    "User",
    "UserRole",
    "Waypoint",
    "WebhookDelivery",
    "WebhookEndpoint",
    "mapped_attribute",
    "metadata",
    "utcnow",
]
