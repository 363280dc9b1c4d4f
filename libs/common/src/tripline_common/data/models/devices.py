"""Device tables: vehicles or phones that push telemetry, authenticated by hashed API keys."""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlmodel import Field

from tripline_common.data.models.base import (
    TriplineModel,
    created_at_field,
    timestamp_field,
    uuid_pk_field,
)


class Device(TriplineModel, table=True):
    """A telemetry source owned by a user. Its API key is shown once and stored only hashed."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_owner_id", "owner_id"),
        # The admin's list, by each of its sorts.
        Index("ix_devices_created_at_id", "created_at", "id"),
        Index("ix_devices_name_id", "name", "id"),
        # Ingest looks a key up by either hash while a rotation's grace period runs.
        Index("ix_devices_previous_api_key_hash", "previous_api_key_hash"),
        CheckConstraint(
            "(previous_api_key_hash IS NULL) = (previous_key_expires_at IS NULL)",
            name="previous_key_pair",
        ),
        {"comment": "Telemetry sources and their (hashed) API keys."},
    )

    id: uuid.UUID = uuid_pk_field()
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    name: str = Field(sa_type=String(100))
    api_key_prefix: str = Field(
        sa_type=String(16),
        sa_column_kwargs={
            "comment": "First characters of the key, shown so users can tell keys apart."
        },
    )
    api_key_hash: str = Field(
        unique=True,
        sa_type=String(64),
        # Keys are long random strings, so a fast unsalted hash is safe (nothing to brute-force)
        # and, unlike Argon2, allows the indexed lookup that authenticates every request.
        sa_column_kwargs={"comment": "SHA-256 hex of the whole key; the key itself is not stored."},
    )
    previous_api_key_hash: str | None = Field(
        default=None,
        sa_type=String(64),
        sa_column_kwargs={
            "comment": "SHA-256 hex of the key replaced by the last rotation, accepted until "
            "previous_key_expires_at (zero-downtime rotation)."
        },
    )
    previous_key_expires_at: datetime | None = timestamp_field(
        comment="End of the previous key's grace period; null when there is none."
    )
    created_at: datetime = created_at_field()
    last_seen_at: datetime | None = timestamp_field(comment="Last accepted telemetry batch.")
    revoked_at: datetime | None = timestamp_field(
        comment="Set when the key is revoked; never un-set."
    )
