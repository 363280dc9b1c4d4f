"""`trip_live_counts`: each user's planned and active trips counted by triggers, so that the trip
stats read two rows instead of every live trip of the user (10,000 planned trips of one user
cost 22 ms, 5x an empty database's stats, in `scripts/bench_scale.py` at issue 18's volumes).

A table of its own, not more rows in `trip_history_totals`: the previous release reads every
row of that table for a user and adds it to what it counts itself, so live rows there would be
counted twice while it still serves. The triggers fire only when a trip enters or leaves a live
status (or changes owner): the worker's progress updates of active trips never call them. One
transaction adds the table, the function, the triggers and the first count; `CREATE TRIGGER`
holds writes to `trips` until it commits (one pass over the live trips, through the status
index) so that no trip is counted twice or missed (docs/operations.md, "Migration 0010").

Revision ID: 0010_trip_live_counts
Revises: 0009_telemetry_received_at
Create Date: 2026-12-07 19:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_trip_live_counts"
down_revision: str | Sequence[str] | None = "0009_telemetry_received_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # A new table and triggers: the previous release neither reads nor writes it.

_KEEP_COUNTS = """
CREATE OR REPLACE FUNCTION trip_live_counts_keep() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN ('planned', 'active') THEN
        UPDATE trip_live_counts SET trips = trips - 1
         WHERE owner_id = OLD.owner_id AND status = OLD.status;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN ('planned', 'active') THEN
        INSERT INTO trip_live_counts AS c (owner_id, status, trips)
        VALUES (NEW.owner_id, NEW.status, 1)
        ON CONFLICT (owner_id, status) DO UPDATE SET trips = c.trips + 1;
    END IF;
    RETURN NULL;
END
$$
"""
_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER trips_live_counts_insert AFTER INSERT ON trips FOR EACH ROW"
    " WHEN (NEW.status IN ('planned', 'active'))"
    " EXECUTE FUNCTION trip_live_counts_keep()",
    "CREATE OR REPLACE TRIGGER trips_live_counts_delete AFTER DELETE ON trips FOR EACH ROW"
    " WHEN (OLD.status IN ('planned', 'active'))"
    " EXECUTE FUNCTION trip_live_counts_keep()",
    "CREATE OR REPLACE TRIGGER trips_live_counts_update"
    " AFTER UPDATE OF status, owner_id ON trips FOR EACH ROW"
    " WHEN ((OLD.status IN ('planned', 'active') OR NEW.status IN ('planned', 'active'))"
    " AND (OLD.status, OLD.owner_id) IS DISTINCT FROM (NEW.status, NEW.owner_id))"
    " EXECUTE FUNCTION trip_live_counts_keep()",
)


def upgrade() -> None:
    op.create_table(
        "trip_live_counts",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("trips", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('planned', 'active', 'completed', 'cancelled')",
            name=op.f("ck_trip_live_counts_status"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_trip_live_counts_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "status", name=op.f("pk_trip_live_counts")),
        comment="Per user and live status (planned, active): trips; kept by trigger.",
        if_not_exists=True,
    )
    op.execute(_KEEP_COUNTS)
    for trigger in _TRIGGERS:
        op.execute(trigger)
    op.execute(
        """
        INSERT INTO trip_live_counts (owner_id, status, trips)
        SELECT owner_id, status, count(*)
          FROM trips WHERE status IN ('planned', 'active') GROUP BY owner_id, status
        ON CONFLICT (owner_id, status) DO NOTHING
        """
    )


def downgrade() -> None:
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS trips_live_counts_{event} ON trips")
    op.execute("DROP FUNCTION IF EXISTS trip_live_counts_keep()")
    op.drop_table("trip_live_counts")
