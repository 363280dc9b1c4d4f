"""Sliding alert windows: `alerts.observed_at`, the device time a speeding or corridor alert's
window starts from (docs/operations.md, "Worker jobs and crons").

A nullable column without a default: adding it rewrites nothing and holds the table's lock for
a moment only. Alerts of trips still active get it from their `details.first_at`, so a burst in
progress during the upgrade is not alerted twice; older alerts no longer matter to any window.

Revision ID: 0007_alert_observed_at
Revises: 0006_account_tokens
Create Date: 2026-12-07 10:30:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_alert_observed_at"
down_revision: str | Sequence[str] | None = "0006_account_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).


def upgrade() -> None:
    op.add_column(
        "alerts",
        sa.Column(
            "observed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Device time of the first fix of a speeding or corridor alert: the start of "
            "the ALERT_WINDOW_SECONDS in which the trip raises no other alert of its rule.",
        ),
    )
    op.execute(
        """
        UPDATE alerts SET observed_at = (details ->> 'first_at')::timestamptz
        WHERE rule IN ('speeding', 'corridor')
          AND details ? 'first_at'
          AND trip_id IN (SELECT id FROM trips WHERE status = 'active')
        """
    )


def downgrade() -> None:
    op.drop_column("alerts", "observed_at")
