"""Telemetry events learn when ingest received them (`received_at`, the key revision 0011
partitions them by), the export's keyset order gets an index that needs no sort, and alerts get
one on `raised_at` alone for the console's alerts per hour.

`received_at` is added with a default: instant at any size (PostgreSQL stores the default once,
rows that predate it read the time of this revision), and the previous release's COPY, which
does not name the column, fills it with the time of its transaction. The index on `(trip_id,
recorded_at, id)` is built concurrently; the export then reads a page straight from it instead
of sorting all of a trip's fixes before the first (docs/operations.md, "Telemetry partitions").
The alerts' index lets the chart read the last day's alerts instead of the whole table: every
other alerts index leads with an owner or a trip, and `ix_alerts_open_raised_at` holds only open
alerts. Alerts are few (one per violation episode), so the extra entry per insert is cheap; it
is built concurrently too. (It joined this revision before the release shipped: one release,
its expand revisions before its contract one.)

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
phase = "expand"  # A column with a default and indexes: the previous release runs on them.

EXPORT_INDEX = "ix_telemetry_events_trip_id_recorded_at_id"
ALERTS_INDEX = "ix_alerts_raised_at"


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
    create_index_concurrently(ALERTS_INDEX, "alerts", ("raised_at",))


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {ALERTS_INDEX}")
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {EXPORT_INDEX}")
    op.drop_column("telemetry_events", "received_at", if_exists=True)
