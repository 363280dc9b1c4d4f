"""`telemetry_events` becomes a table partitioned by day of `received_at`, so that retention
drops whole days instead of deleting rows (docs/operations.md, "Telemetry partitions").

The existing table is not copied: it becomes the first partition, `telemetry_events_legacy`,
holding everything received before the cut-over (midnight UTC at least a day after this runs;
until then new events still land in it). What it costs, on a table of any size:

1. a unique index on `(id, received_at)`, built concurrently (the partitioned key must hold the
   partition key); writes go on;
2. a CHECK that every row was received before the cut-over, added NOT VALID (a brief lock) and
   then validated by one scan that blocks no write: with it, attaching needs no scan;
3. one short transaction holding an exclusive lock on the table: rename it, make that index its
   primary key, drop its foreign keys to batches and trips, create the partitioned parent with
   the same name, columns, checks and indexes, attach the old table as the partition for
   `[MINVALUE, cut-over)`, add the DEFAULT partition. Nothing is scanned: milliseconds.

Dropped on the way: the foreign key to `telemetry_batches` (a partitioned table cannot carry the
batches' cascade cheaply; ingest writes a batch and its events in one transaction, retention
removes them together) and the one to `trips` (deleting a trip rewrote every one of its events
through `ON DELETE SET NULL`; `trip_id` is now a plain reference, read only through a trip that
exists). The worker's cron creates the daily partitions ahead and drops those past retention
(`tripline_worker.telemetry.partitions`); the legacy partition goes once its cut-over is past
retention, its rows deleted by batch until then.

A contract revision only because it renames: the previous release reads and writes the
partitioned table as it did the plain one (tests/test_previous_release.py).

Revision ID: 0011_telemetry_partitions
Revises: 0010_trip_live_counts
Create Date: 2026-12-07 19:10:00.000000+00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from tripline_common.migrations.safety import (
    STATEMENT_TIMEOUT,
    create_index_concurrently,
    set_timeouts,
)

revision: str = "0011_telemetry_partitions"
down_revision: str | Sequence[str] | None = "0010_trip_live_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "contract"  # It renames the table (see above: the previous release still works on it).

_SWAP = "inside the swap's one short transaction, which already holds the exclusive lock"
squawk_exceptions: dict[str, str] = {
    "renaming-table": "the parent takes the old name at once, in the same transaction: "
    "every client, the previous release's included, sees `telemetry_events` throughout",
    "renaming-object": "the old table's own indexes and constraints, renamed to free their "
    "names for the parent's " + _SWAP,
    "ban-drop-constraint": "the old table's primary key (replaced by `(id, received_at)`, "
    "built concurrently above) and its foreign keys to batches and trips (see above) " + _SWAP,
    "require-concurrent-index-deletion": "the trip index without `id` (revision 0009 built "
    "its replacement) " + _SWAP,
    "ban-alter-identity": "the old table's identity is dropped " + _SWAP + "; the parent's "
    "identity continues its numbers, so no insert sees a change",
}

LEGACY = "telemetry_events_legacy"
LEGACY_KEY = "pk_telemetry_events_legacy"
LEGACY_BOUND = "ck_telemetry_events_legacy_received_before_cutover"
# The plain table's indexes: kept, under the legacy partition's names, where the parent has the
# same one (PostgreSQL attaches them instead of building new ones); the trip index without `id`
# is dropped (revision 0009's index replaces it).
KEPT_INDEXES = (
    ("ix_telemetry_events_batch_id", "ix_telemetry_events_legacy_batch_id"),
    (
        "ix_telemetry_events_device_id_recorded_at",
        "ix_telemetry_events_legacy_device_id_recorded_at",
    ),
    (
        "ix_telemetry_events_trip_id_recorded_at_id",
        "ix_telemetry_events_legacy_trip_id_recorded_at_id",
    ),
)
CHECKS = (
    ("ck_telemetry_events_accuracy_non_negative", "accuracy_m >= 0"),
    ("ck_telemetry_events_heading_range", "heading_deg >= 0 AND heading_deg < 360"),
    ("ck_telemetry_events_lat_range", "lat BETWEEN -90 AND 90"),
    ("ck_telemetry_events_lon_range", "lon BETWEEN -180 AND 180"),
    ("ck_telemetry_events_speed_non_negative", "speed_kmh >= 0"),
)


def cutover(now: datetime) -> datetime:
    """Midnight UTC at least one day after `now`: rows received until then still fit the legacy
    partition, however long the validation scan takes."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today + timedelta(days=2)


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column(
            "trip_id",
            sa.Uuid(),
            nullable=True,
            comment="Active trip the worker attached the event to, if any.",
        ),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), nullable=False, comment="Device clock, UTC."
        ),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed_kmh", sa.Float(), nullable=True),
        sa.Column(
            "heading_deg",
            sa.Float(),
            nullable=True,
            comment="Direction of travel, degrees from north.",
        ),
        sa.Column(
            "accuracy_m", sa.Float(), nullable=True, comment="Horizontal accuracy radius (m)."
        ),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When ingest accepted the event's batch: the partition key.",
        ),
    ]


def upgrade() -> None:
    bound = cutover(datetime.now(UTC)).isoformat()
    create_index_concurrently(LEGACY_KEY, "telemetry_events", ("id", "received_at"), unique=True)
    with op.get_context().autocommit_block():
        # A rerun (the swap below failed, say on its lock timeout) sets the bound afresh.
        op.execute(f"ALTER TABLE telemetry_events DROP CONSTRAINT IF EXISTS {LEGACY_BOUND}")
        op.execute(
            f"ALTER TABLE telemetry_events ADD CONSTRAINT {LEGACY_BOUND}"
            f" CHECK (received_at < '{bound}') NOT VALID"
        )
        # One scan of the whole table; writes go on meanwhile (SHARE UPDATE EXCLUSIVE).
        op.execute("SET statement_timeout = 0")
        op.execute(f"ALTER TABLE telemetry_events VALIDATE CONSTRAINT {LEGACY_BOUND}")
        op.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")

    # The swap, in the revision's transaction: catalog changes only.
    op.execute(f"ALTER TABLE telemetry_events RENAME TO {LEGACY}")
    for name, legacy_name in KEPT_INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {legacy_name}")
    op.execute("DROP INDEX ix_telemetry_events_trip_id_recorded_at")
    for constraint in (
        "pk_telemetry_events",
        "fk_telemetry_events_batch_id_telemetry_batches",
        "fk_telemetry_events_trip_id_trips",
    ):
        op.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {constraint}")
    op.execute(
        f"ALTER TABLE {LEGACY} ADD CONSTRAINT {LEGACY_KEY} PRIMARY KEY USING INDEX {LEGACY_KEY}"
    )
    op.execute(
        f"ALTER TABLE {LEGACY} RENAME CONSTRAINT fk_telemetry_events_device_id_devices"
        " TO fk_telemetry_events_legacy_device_id_devices"
    )
    # The parent's identity continues the old one's numbers (the export's tie-break is `id`).
    op.execute(f"ALTER TABLE {LEGACY} ALTER COLUMN id DROP IDENTITY")

    op.create_table(
        "telemetry_events",
        *_columns(),
        *(sa.CheckConstraint(check, name=op.f(name)) for name, check in CHECKS),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_telemetry_events_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", "received_at", name=op.f("pk_telemetry_events")),
        comment="Position fixes reported by devices; partitioned by day of received_at.",
        postgresql_partition_by="RANGE (received_at)",
    )
    op.create_index("ix_telemetry_events_batch_id", "telemetry_events", ["batch_id"])
    op.create_index(
        "ix_telemetry_events_device_id_recorded_at",
        "telemetry_events",
        ["device_id", "recorded_at"],
    )
    op.create_index(
        "ix_telemetry_events_trip_id_recorded_at_id",
        "telemetry_events",
        ["trip_id", "recorded_at", "id"],
    )
    op.execute(
        "SELECT setval(pg_get_serial_sequence('telemetry_events', 'id'),"
        " (SELECT coalesce(max(id), 0) + 1 FROM telemetry_events_legacy), false)"
    )
    op.execute(
        f"ALTER TABLE telemetry_events ATTACH PARTITION {LEGACY}"
        f" FOR VALUES FROM (MINVALUE) TO ('{bound}')"
    )
    op.execute("CREATE TABLE telemetry_events_default PARTITION OF telemetry_events DEFAULT")


def downgrade() -> None:
    # Copies every row back into one plain table (the cost of the way back: a full rewrite);
    # references that the plain table's foreign keys would refuse are cleared first.
    set_timeouts(statement="0")  # One statement copies the whole table.
    op.execute("ALTER TABLE telemetry_events RENAME TO telemetry_events_partitioned")
    op.create_table("telemetry_events", *_columns(), comment="Position fixes reported by devices.")
    op.execute(
        "INSERT INTO telemetry_events"
        " (id, batch_id, device_id, trip_id, recorded_at, lat, lon, speed_kmh, heading_deg,"
        "  accuracy_m, received_at)"
        " SELECT e.id, e.batch_id, e.device_id,"
        "  CASE WHEN EXISTS (SELECT FROM trips t WHERE t.id = e.trip_id) THEN e.trip_id END,"
        "  e.recorded_at, e.lat, e.lon, e.speed_kmh, e.heading_deg, e.accuracy_m, e.received_at"
        " FROM telemetry_events_partitioned e"
        " WHERE EXISTS (SELECT FROM telemetry_batches b WHERE b.id = e.batch_id)"
    )
    op.execute("DROP TABLE telemetry_events_partitioned")
    op.execute(
        "SELECT setval(pg_get_serial_sequence('telemetry_events', 'id'),"
        " (SELECT coalesce(max(id), 0) + 1 FROM telemetry_events), false)"
    )
    op.create_primary_key(op.f("pk_telemetry_events"), "telemetry_events", ["id"])
    for name, check in CHECKS:
        op.create_check_constraint(op.f(name), "telemetry_events", check)
    op.create_foreign_key(
        op.f("fk_telemetry_events_batch_id_telemetry_batches"),
        "telemetry_events",
        "telemetry_batches",
        ["batch_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_telemetry_events_device_id_devices"),
        "telemetry_events",
        "devices",
        ["device_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        op.f("fk_telemetry_events_trip_id_trips"),
        "telemetry_events",
        "trips",
        ["trip_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index("ix_telemetry_events_batch_id", "telemetry_events", ["batch_id"])
    op.create_index(
        "ix_telemetry_events_device_id_recorded_at",
        "telemetry_events",
        ["device_id", "recorded_at"],
    )
    op.create_index(
        "ix_telemetry_events_trip_id_recorded_at", "telemetry_events", ["trip_id", "recorded_at"]
    )
    op.create_index(
        "ix_telemetry_events_trip_id_recorded_at_id",
        "telemetry_events",
        ["trip_id", "recorded_at", "id"],
    )
