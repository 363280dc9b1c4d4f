"""Lists that cost a page at any size: an index for each allowlisted sort and indexed filter of
the API's and the admin's lists, the admin's latest open alerts, trigram indexes for the
admin's `q=` searches where `pg_trgm` exists, and `trip_history_totals`, kept by triggers, so
that trip stats never read a user's ended trips (docs/performance.md, "Which index serves which
list"; docs/operations.md, "Migration 0008: list indexes").

Every index is built concurrently (`create_index_concurrently`): writes go on while it builds.
The one wait: writes to `trips` pause while the totals are first counted (one pass over the
ended trips, with the triggers' lock). `pg_trgm` ships with PostgreSQL's
contrib package but not with every server (the embedded one of `make dev` has none): without
it, or without the right to create it, the trigram indexes are skipped with a warning and the
searches stay correct, only unindexed (docs/operations.md says how to add them later).

Revision ID: 0008_list_indexes
Revises: 0007_alert_observed_at
Create Date: 2026-12-07 16:00:00.000000+00:00
"""

import logging
from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

from tripline_common.migrations.safety import create_index_concurrently

revision: str = "0008_list_indexes"
down_revision: str | Sequence[str] | None = "0007_alert_observed_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds (indexes, a table kept by triggers): the previous release runs on it.

log = logging.getLogger("tripline.migrate")


class ListIndex(NamedTuple):
    name: str
    table: str
    columns: tuple[str, ...]
    where: str | None = None


# (owner_id, sort key, id): the keyset order of `fetch_page`, walked either way, the cursor's
# row comparison `(key, id) < (:key, :id)` an index condition. A filter on a status or rule
# gets the same order after the equality, so a rare status reads only its own rows.
LIST_INDEXES = (
    ListIndex("ix_trips_owner_id_planned_start_id", "trips", ("owner_id", "planned_start", "id")),
    ListIndex("ix_trips_owner_id_name_id", "trips", ("owner_id", "name", "id")),
    ListIndex(
        "ix_trips_owner_id_status_created_at_id",
        "trips",
        ("owner_id", "status", "created_at", "id"),
    ),
    # Also the trip stats' live statuses and next planned start. Nothing the worker's progress
    # update writes (distance, position, eta) is in a trips index: that update stays HOT.
    ListIndex(
        "ix_trips_owner_id_status_planned_start_id",
        "trips",
        ("owner_id", "status", "planned_start", "id"),
    ),
    ListIndex("ix_trips_owner_id_status_name_id", "trips", ("owner_id", "status", "name", "id")),
    ListIndex("ix_trips_device_id_created_at_id", "trips", ("device_id", "created_at", "id")),
    ListIndex("ix_alerts_owner_id_rule_id", "alerts", ("owner_id", "rule", "id")),
    ListIndex("ix_alerts_owner_id_status_id", "alerts", ("owner_id", "status", "id")),
    ListIndex(
        "ix_alerts_owner_id_rule_raised_at_id", "alerts", ("owner_id", "rule", "raised_at", "id")
    ),
    ListIndex(
        "ix_alerts_owner_id_status_raised_at_id",
        "alerts",
        ("owner_id", "status", "raised_at", "id"),
    ),
    # The admin overview's latest open alerts: a few entries of a small partial index.
    ListIndex("ix_alerts_open_raised_at", "alerts", ("raised_at DESC", "id"), "status = 'open'"),
    ListIndex("ix_jobs_created_at_id", "jobs", ("created_at", "id")),
    ListIndex("ix_devices_created_at_id", "devices", ("created_at", "id")),
    ListIndex("ix_devices_name_id", "devices", ("name", "id")),
    ListIndex("ix_users_created_at_id", "users", ("created_at", "id")),
    ListIndex("ix_users_email_id", "users", ("email", "id")),
    ListIndex("ix_audit_log_request_id", "audit_log", ("request_id",)),
    ListIndex("ix_audit_log_action_created_at_id", "audit_log", ("action", "created_at", "id")),
)

# The admin's `ILIKE '%text%'` searches. Not declared by the models (they exist only where
# pg_trgm does): migrations/env.py leaves indexes named `*_trgm` out of the drift check.
TRIGRAM_INDEXES = (
    ListIndex("ix_users_email_trgm", "users", ("email gin_trgm_ops",)),
    ListIndex("ix_users_display_name_trgm", "users", ("display_name gin_trgm_ops",)),
    ListIndex("ix_devices_name_trgm", "devices", ("name gin_trgm_ops",)),
    ListIndex("ix_devices_api_key_prefix_trgm", "devices", ("api_key_prefix gin_trgm_ops",)),
    ListIndex("ix_audit_log_actor_label_trgm", "audit_log", ("actor_label gin_trgm_ops",)),
)


def trigram_skip_reason(*, available: bool, installed: bool, may_create: bool) -> str | None:
    """Why the trigram indexes cannot be built on this server, or None when they can: pg_trgm
    is installed already, or available and the role may create it (it is a trusted extension:
    CREATE on the database suffices)."""
    if installed:
        return None
    if not available:
        return "the server has no pg_trgm extension (pg_available_extensions)"
    if not may_create:
        return "the role may not create extensions in this database (no CREATE privilege)"
    return None


def _server_trigram_skip_reason() -> str | None:
    row = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm'),"
                " EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm'),"
                " has_database_privilege(current_database(), 'CREATE')"
            )
        )
        .one()
    )
    return trigram_skip_reason(available=row[0], installed=row[1], may_create=row[2])


# The history's totals, kept by the database itself on every write of `trips`. The triggers
# fire only when a row enters, leaves or changes within a final status: the worker's progress
# updates of active trips never call the function.
_KEEP_TOTALS = """
CREATE OR REPLACE FUNCTION trip_history_totals_keep() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN ('completed', 'cancelled') THEN
        UPDATE trip_history_totals
           SET trips = trips - 1, distance_m = distance_m - OLD.distance_m
         WHERE owner_id = OLD.owner_id AND status = OLD.status;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN ('completed', 'cancelled') THEN
        INSERT INTO trip_history_totals AS t (owner_id, status, trips, distance_m)
        VALUES (NEW.owner_id, NEW.status, 1, NEW.distance_m)
        ON CONFLICT (owner_id, status) DO UPDATE
           SET trips = t.trips + 1, distance_m = t.distance_m + EXCLUDED.distance_m;
    END IF;
    RETURN NULL;
END
$$
"""
_TRIGGERS = (
    "CREATE OR REPLACE TRIGGER trips_history_totals_insert AFTER INSERT ON trips FOR EACH ROW"
    " WHEN (NEW.status IN ('completed', 'cancelled'))"
    " EXECUTE FUNCTION trip_history_totals_keep()",
    "CREATE OR REPLACE TRIGGER trips_history_totals_delete AFTER DELETE ON trips FOR EACH ROW"
    " WHEN (OLD.status IN ('completed', 'cancelled'))"
    " EXECUTE FUNCTION trip_history_totals_keep()",
    "CREATE OR REPLACE TRIGGER trips_history_totals_update"
    " AFTER UPDATE OF status, distance_m, owner_id ON trips FOR EACH ROW"
    " WHEN ((OLD.status IN ('completed', 'cancelled') OR NEW.status IN ('completed', 'cancelled'))"
    " AND (OLD.status, OLD.distance_m, OLD.owner_id)"
    " IS DISTINCT FROM (NEW.status, NEW.distance_m, NEW.owner_id))"
    " EXECUTE FUNCTION trip_history_totals_keep()",
)


def _create_history_totals() -> None:
    op.create_table(
        "trip_history_totals",
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("trips", sa.BigInteger(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "status IN ('planned', 'active', 'completed', 'cancelled')",
            name=op.f("ck_trip_history_totals_status"),
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_trip_history_totals_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("owner_id", "status", name=op.f("pk_trip_history_totals")),
        comment="Per user and final status: trips and distance (m); kept by trigger.",
        if_not_exists=True,
    )
    op.execute(_KEEP_TOTALS)
    for trigger in _TRIGGERS:
        op.execute(trigger)
    # In the triggers' transaction: CREATE TRIGGER holds writes to `trips` until it commits, so
    # no trip ends between the count and the first trigger call (neither missed nor counted
    # twice). The cost: trip writes wait for one pass over the ended trips (docs/operations.md).
    op.execute(
        """
        INSERT INTO trip_history_totals (owner_id, status, trips, distance_m)
        SELECT owner_id, status, count(*), coalesce(sum(distance_m), 0)
          FROM trips WHERE status IN ('completed', 'cancelled') GROUP BY owner_id, status
        ON CONFLICT (owner_id, status) DO NOTHING
        """
    )


def upgrade() -> None:
    for index in LIST_INDEXES:
        create_index_concurrently(index.name, index.table, index.columns, where=index.where)
    # Offline (`--sql`) there is no server to ask: the SQL shows what a server with pg_trgm runs.
    reason = None if op.get_context().as_sql else _server_trigram_skip_reason()
    if reason is None:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for index in TRIGRAM_INDEXES:
            create_index_concurrently(index.name, index.table, index.columns, using="gin")
    else:
        log.warning("trigram indexes skipped: %s; admin searches stay unindexed", reason)
    # Last, in the transaction that records the revision: a failed or interrupted run leaves
    # indexes only (each `IF NOT EXISTS`), and the rerun finds no half-counted totals.
    _create_history_totals()


def downgrade() -> None:
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS trips_history_totals_{event} ON trips")
    op.execute("DROP FUNCTION IF EXISTS trip_history_totals_keep()")
    op.drop_table("trip_history_totals")
    # The extension stays: something else may use it, and it costs nothing unused.
    with op.get_context().autocommit_block():
        for index in (*TRIGRAM_INDEXES, *LIST_INDEXES):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {index.name}")
