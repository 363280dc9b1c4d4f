"""Zero-downtime rotation: a device's previous API key and a webhook endpoint's previous secret,
each valid until an expiry (docs/operations.md, "Rotating device keys" and "Rotating webhook
secrets").

Revision ID: 0004_key_rotation_overlap
Revises: 0003_audit_log_append_only
Create Date: 2026-11-29 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_key_rotation_overlap"
down_revision: str | Sequence[str] | None = "0003_audit_log_append_only"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).

# Linted by squawk (.squawk.toml); what this revision does that squawk would refuse, and why.
_SMALL_TABLES = (
    "devices and webhook_endpoints hold one row per device or endpoint (thousands, never the "
    "telemetry's millions): the scan or build takes milliseconds under the runner's lock_timeout"
)
squawk_exceptions: dict[str, str] = {
    "constraint-missing-not-valid": "both columns are new and NULL in every row: " + _SMALL_TABLES,
    "require-concurrent-index-creation": _SMALL_TABLES,
}


def upgrade() -> None:
    # Nullable columns without a default: PostgreSQL adds them without rewriting the tables.
    op.add_column(
        "devices",
        sa.Column(
            "previous_api_key_hash",
            sa.String(length=64),
            nullable=True,
            comment="SHA-256 hex of the key replaced by the last rotation, accepted until "
            "previous_key_expires_at (zero-downtime rotation).",
        ),
    )
    op.add_column(
        "devices",
        sa.Column(
            "previous_key_expires_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="End of the previous key's grace period; null when there is none.",
        ),
    )
    op.create_check_constraint(
        op.f("ck_devices_previous_key_pair"),
        "devices",
        "(previous_api_key_hash IS NULL) = (previous_key_expires_at IS NULL)",
    )
    # Every value is NULL on a live system until the first rotation: the index builds at once.
    op.create_index(
        "ix_devices_previous_api_key_hash", "devices", ["previous_api_key_hash"], unique=False
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column(
            "previous_secret",
            sa.String(length=128),
            nullable=True,
            comment="The secret replaced by the last rotation; deliveries carry a signature "
            "with it too until previous_secret_expires_at.",
        ),
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column(
            "previous_secret_expires_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="End of the previous secret's overlap; null when there is none.",
        ),
    )
    op.create_check_constraint(
        op.f("ck_webhook_endpoints_previous_secret_pair"),
        "webhook_endpoints",
        "(previous_secret IS NULL) = (previous_secret_expires_at IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_webhook_endpoints_previous_secret_pair"), "webhook_endpoints", type_="check"
    )
    op.drop_column("webhook_endpoints", "previous_secret_expires_at")
    op.drop_column("webhook_endpoints", "previous_secret")
    op.drop_index("ix_devices_previous_api_key_hash", table_name="devices")
    op.drop_constraint(op.f("ck_devices_previous_key_pair"), "devices", type_="check")
    op.drop_column("devices", "previous_key_expires_at")
    op.drop_column("devices", "previous_api_key_hash")
