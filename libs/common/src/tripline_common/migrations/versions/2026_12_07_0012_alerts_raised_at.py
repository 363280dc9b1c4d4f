"""Alerts get an index on `raised_at` alone, so the console's alerts-per-hour chart reads the
last day's alerts from it instead of the whole table (every other alerts index leads with an
owner or a trip, and `ix_alerts_open_raised_at` holds only open alerts).

Alerts are few (one per violation episode, deduplicated), so the extra entry per insert is
cheap; the index is built concurrently: writes go on while it builds.

Revision ID: 0012_alerts_raised_at
Revises: 0011_telemetry_partitions
Create Date: 2026-12-07 22:00:00.000000+00:00
"""

from collections.abc import Sequence

from alembic import op

from tripline_common.migrations.safety import create_index_concurrently

revision: str = "0012_alerts_raised_at"
down_revision: str | Sequence[str] | None = "0011_telemetry_partitions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds an index: the previous release runs on it.

INDEX = "ix_alerts_raised_at"


def upgrade() -> None:
    create_index_concurrently(INDEX, "alerts", ("raised_at",))


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
