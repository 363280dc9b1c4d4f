"""Webhook tables: user endpoints that receive signed alert notifications, and each delivery."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field

from tripline_common.data.models.base import (
    TriplineModel,
    created_at_field,
    enum_check,
    enum_field,
    timestamp_field,
    uuid_pk_field,
)


class DeliveryStatus(StrEnum):
    """State of one alert's delivery to one endpoint."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEndpoint(TriplineModel, table=True):
    """A URL of the user's that receives alerts as HMAC-signed POSTs."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_owner_id", "owner_id"),
        CheckConstraint(
            "(previous_secret IS NULL) = (previous_secret_expires_at IS NULL)",
            name="previous_secret_pair",
        ),
        {"comment": "Users' webhook receivers."},
    )

    id: uuid.UUID = uuid_pk_field()
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    url: str = Field(sa_type=String(2048))
    # Stored retrievable, unlike passwords and API keys: the worker must compute
    # HMAC(secret, body) for every delivery, and a hash cannot sign. Treat the column as a
    # credential (never log it, show it to the user once, let them rotate it).
    secret: str = Field(
        sa_type=String(128),
        sa_column_kwargs={"comment": "HMAC-SHA256 signing secret (kept in clear: needed to sign)."},
    )
    previous_secret: str | None = Field(
        default=None,
        sa_type=String(128),
        sa_column_kwargs={
            "comment": "The secret replaced by the last rotation; deliveries carry a signature "
            "with it too until previous_secret_expires_at."
        },
    )
    previous_secret_expires_at: datetime | None = timestamp_field(
        comment="End of the previous secret's overlap; null when there is none."
    )
    is_active: bool = Field(default=True, sa_column_kwargs={"server_default": text("true")})
    created_at: datetime = created_at_field()


class WebhookDelivery(TriplineModel, table=True):
    """The delivery of one alert to one endpoint; unique per pair, so enqueueing twice is safe."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "alert_id"),
        enum_check("status", DeliveryStatus),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        Index("ix_webhook_deliveries_alert_id", "alert_id"),
        # Retries and the sweeper: pending deliveries, oldest first.
        Index("ix_webhook_deliveries_status_created_at", "status", "created_at"),
        {"comment": "Attempts to deliver alerts to webhook endpoints."},
    )

    id: uuid.UUID = uuid_pk_field()
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoints.id", ondelete="CASCADE")
    alert_id: uuid.UUID = Field(foreign_key="alerts.id", ondelete="CASCADE")
    status: DeliveryStatus = enum_field(DeliveryStatus, DeliveryStatus.PENDING)
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": text("0")})
    last_status_code: int | None = Field(
        default=None, sa_column_kwargs={"comment": "HTTP status of the last attempt, if any."}
    )
    last_error: str | None = Field(default=None, sa_type=Text)
    request_id: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "Correlation id, also sent in the X-Request-ID header."},
    )
    created_at: datetime = created_at_field()
    delivered_at: datetime | None = timestamp_field()
