"""Telemetry events learn when ingest received them (`received_at`, the key revision 0011
partitions them by), and the export's keyset order gets an index that needs no sort.

`received_at` is added with a default: instant at any size (PostgreSQL stores the default once,
rows that predate it read the time of this revision), and the previous release's COPY, which
does not name the column, fills it with the time of its transaction. The index on `(trip_id,
recorded_at, id)` is built concurrently; the export then reads a page straight from it instead
of sorting all of a trip's fixes before the first (docs/operations.md, "Telemetry partitions").

Revision ID: 0009_telemetry_received_at
Revises: 0008_list_indexes
Create Date: 2026-12-07 19:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from tripline_common.migrations.safety import create_index_concurrently

revision: str = "0009_telemetry_received_at"
down_revision: str | Sequence[str] | None = "0008_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # A column with a default and an index: the previous release runs on it.

EXPORT_INDEX = "ix_telemetry_events_trip_id_recorded_at_id"


def upgrade() -> None:
    op.add_column(
        "telemetry_events",
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When ingest accepted the event's batch: the partition key.",
        ),
        if_not_exists=True,
    )
    create_index_concurrently(EXPORT_INDEX, "telemetry_events", ("trip_id", "recorded_at", "id"))


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {EXPORT_INDEX}")
    op.drop_column("telemetry_events", "received_at", if_exists=True)
