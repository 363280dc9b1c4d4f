"""Audit log table: who did what to which object, append-only."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from tripline_common.data.models.base import TriplineModel, created_at_field


class AuditLogEntry(TriplineModel, table=True):
    """One security-relevant action (login, role change, key revocation...). Never updated."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_actor_id", "actor_id"),
        Index("ix_audit_log_target_type_target_id", "target_type", "target_id"),
        # The admin's filters: one request's entries, one action's newest first.
        Index("ix_audit_log_request_id", "request_id"),
        Index("ix_audit_log_action_created_at_id", "action", "created_at", "id"),
        {"comment": "Append-only record of security-relevant actions."},
    )

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger, sa_column_args=[Identity()]
    )
    actor_id: uuid.UUID | None = Field(
        default=None,
        foreign_key="users.id",
        ondelete="SET NULL",
        sa_column_kwargs={"comment": "The user who acted; NULL for the system or a deleted user."},
    )
    actor_label: str | None = Field(
        default=None,
        sa_type=String(320),
        sa_column_kwargs={"comment": "Who acted, as text (email, `system`); outlives the user."},
    )
    action: str = Field(
        sa_type=String(64),
        sa_column_kwargs={"comment": "Dotted verb, e.g. user.login, session.revoke."},
    )
    target_type: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "Kind of object acted on, e.g. user, device."},
    )
    target_id: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={"comment": "Its id as text (UUID or number)."},
    )
    details: dict[str, Any] = Field(
        default_factory=dict,
        sa_type=JSONB,
        sa_column_kwargs={"server_default": text("'{}'::jsonb")},
    )
    request_id: str | None = Field(default=None, sa_type=String(64))
    source_ip: str | None = Field(
        default=None,
        sa_type=String(45),
        sa_column_kwargs={"comment": "Client address as text (see auth_sessions.ip)."},
    )
    created_at: datetime = created_at_field()
