"""Core tables: identity, devices, trips, telemetry, alerts, jobs, audit log and webhooks.

Revision ID: 0001_core_tables
Revises: (base)
Create Date: 2026-11-26 21:21:40.610608+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_core_tables"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "email",
            sa.String(length=320),
            nullable=False,
            comment="As typed by the user; unique ignoring case.",
        ),
        sa.Column(
            "password_hash",
            sa.String(length=255),
            nullable=False,
            comment="Argon2/bcrypt hash (PHC string); never the password.",
        ),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), server_default="user", nullable=False),
        sa.Column(
            "is_active",
            sa.Boolean(),
            server_default=sa.text("true"),
            nullable=False,
            comment="False disables login and every session at once.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('user', 'operator', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        comment="User accounts.",
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "actor_id",
            sa.Uuid(),
            nullable=True,
            comment="The user who acted; NULL for the system or a deleted user.",
        ),
        sa.Column(
            "actor_label",
            sa.String(length=320),
            nullable=True,
            comment="Who acted, as text (email, `system`); outlives the user.",
        ),
        sa.Column(
            "action",
            sa.String(length=64),
            nullable=False,
            comment="Dotted verb, e.g. user.login, session.revoke.",
        ),
        sa.Column(
            "target_type",
            sa.String(length=64),
            nullable=True,
            comment="Kind of object acted on, e.g. user, device.",
        ),
        sa.Column(
            "target_id",
            sa.String(length=64),
            nullable=True,
            comment="Its id as text (UUID or number).",
        ),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column(
            "source_ip",
            sa.String(length=45),
            nullable=True,
            comment="Client address as text (see auth_sessions.ip).",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_audit_log_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        comment="Append-only record of security-relevant actions.",
    )
    op.create_index("ix_audit_log_actor_id", "audit_log", ["actor_id"], unique=False)
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"], unique=False)
    op.create_index(
        "ix_audit_log_target_type_target_id",
        "audit_log",
        ["target_type", "target_id"],
        unique=False,
    )
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), server_default="api", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Last authenticated request (writes may be throttled).",
        ),
        sa.Column(
            "revoked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Set by logout or by an operator.",
        ),
        sa.Column("revoked_reason", sa.String(length=200), nullable=True),
        sa.Column(
            "refresh_token_hash",
            sa.String(length=64),
            nullable=True,
            comment="SHA-256 hex of the current refresh token (rotated on use).",
        ),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column(
            "ip",
            sa.String(length=45),
            nullable=True,
            comment="Client address at login (IPv4 or IPv6 text).",
        ),
        sa.CheckConstraint("kind IN ('api', 'console')", name=op.f("ck_auth_sessions_kind")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_auth_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
        sa.UniqueConstraint("refresh_token_hash", name=op.f("uq_auth_sessions_refresh_token_hash")),
        comment="Server-side login sessions (API and admin console).",
    )
    op.create_index("ix_auth_sessions_expires_at", "auth_sessions", ["expires_at"], unique=False)
    op.create_index("ix_auth_sessions_user_id", "auth_sessions", ["user_id"], unique=False)
    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "api_key_prefix",
            sa.String(length=16),
            nullable=False,
            comment="First characters of the key, shown so users can tell keys apart.",
        ),
        sa.Column(
            "api_key_hash",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 hex of the whole key; the key itself is not stored.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Last accepted telemetry batch.",
        ),
        sa.Column(
            "revoked_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Set when the key is revoked; never un-set.",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_devices_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_devices_api_key_hash")),
        comment="Telemetry sources and their (hashed) API keys.",
    )
    op.create_index("ix_devices_owner_id", "devices", ["owner_id"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "owner_id",
            sa.Uuid(),
            nullable=True,
            comment="Who started it; NULL for system jobs or deleted users.",
        ),
        sa.Column(
            "kind",
            sa.String(length=64),
            nullable=False,
            comment="The worker function, e.g. import_trips, export_trips.",
        ),
        sa.Column("status", sa.String(length=32), server_default="queued", nullable=False),
        sa.Column(
            "arq_job_id",
            sa.String(length=128),
            nullable=False,
            comment="The ARQ `_job_id` (deterministic, derived from id).",
        ),
        sa.Column(
            "progress",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Percent done, 0-100.",
        ),
        sa.Column(
            "result",
            postgresql.JSONB(none_as_null=True, astext_type=sa.Text()),
            nullable=True,
            comment="Outcome for the client (counts, a download link...).",
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "request_id",
            sa.String(length=64),
            nullable=True,
            comment="Correlation id of the request that enqueued the job.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_jobs_status"),
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name=op.f("ck_jobs_progress_range")),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_jobs_owner_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("arq_job_id", name=op.f("uq_jobs_arq_job_id")),
        comment="Background jobs users and operators can follow.",
    )
    op.create_index("ix_jobs_owner_id_created_at", "jobs", ["owner_id", "created_at"], unique=False)
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"], unique=False)
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column(
            "secret",
            sa.String(length=128),
            nullable=False,
            comment="HMAC-SHA256 signing secret (kept in clear: needed to sign).",
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_webhook_endpoints_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
        comment="Users' webhook receivers.",
    )
    op.create_index(
        "ix_webhook_endpoints_owner_id", "webhook_endpoints", ["owner_id"], unique=False
    )
    op.create_table(
        "telemetry_batches",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column(
            "client_batch_id",
            sa.String(length=64),
            nullable=True,
            comment="The device's own id for the upload; retries reuse it.",
        ),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("event_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "attempts",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Processing attempts so far; lets the sweeper give up on poison batches.",
        ),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
            comment="When ingest accepted the upload.",
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "request_id",
            sa.String(length=64),
            nullable=True,
            comment="Correlation id of the ingest request (X-Request-ID).",
        ),
        sa.Column("error", sa.Text(), nullable=True, comment="Why it failed."),
        sa.CheckConstraint(
            "status IN ('pending', 'processed', 'failed')", name=op.f("ck_telemetry_batches_status")
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_telemetry_batches_attempts_non_negative")
        ),
        sa.CheckConstraint(
            "event_count >= 0", name=op.f("ck_telemetry_batches_event_count_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_telemetry_batches_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_batches")),
        sa.UniqueConstraint(
            "device_id",
            "client_batch_id",
            name=op.f("uq_telemetry_batches_device_id_client_batch_id"),
        ),
        comment="Telemetry uploads; the unit of work of the telemetry pipeline.",
    )
    op.create_index(
        "ix_telemetry_batches_status_received_at",
        "telemetry_batches",
        ["status", "received_at"],
        unique=False,
    )
    op.create_table(
        "trips",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column(
            "device_id",
            sa.Uuid(),
            nullable=True,
            comment="The device expected to make the trip; NULL if deleted.",
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="planned", nullable=False),
        sa.Column("origin_lat", sa.Float(), nullable=False),
        sa.Column("origin_lon", sa.Float(), nullable=False),
        sa.Column("destination_lat", sa.Float(), nullable=False),
        sa.Column("destination_lon", sa.Float(), nullable=False),
        sa.Column("planned_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "planned_arrival",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When the trip should end; later than this raises a `late` alert.",
        ),
        sa.Column(
            "speed_limit_kmh",
            sa.Float(),
            nullable=True,
            comment="Faster telemetry raises a `speeding` alert; NULL: no rule.",
        ),
        sa.Column(
            "corridor_m",
            sa.Float(),
            nullable=True,
            comment="Allowed distance (m) from the planned route; beyond raises `corridor`.",
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_lat", sa.Float(), nullable=True),
        sa.Column("last_lon", sa.Float(), nullable=True),
        sa.Column(
            "last_seen_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Time of the latest telemetry event.",
        ),
        sa.Column(
            "distance_m",
            sa.Float(),
            server_default=sa.text("0"),
            nullable=False,
            comment="Distance travelled so far (m).",
        ),
        sa.Column(
            "eta",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Estimated arrival, from recent progress.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('planned', 'active', 'completed', 'cancelled')",
            name=op.f("ck_trips_status"),
        ),
        sa.CheckConstraint("corridor_m > 0", name=op.f("ck_trips_corridor_positive")),
        sa.CheckConstraint(
            "destination_lat BETWEEN -90 AND 90", name=op.f("ck_trips_destination_lat_range")
        ),
        sa.CheckConstraint(
            "destination_lon BETWEEN -180 AND 180", name=op.f("ck_trips_destination_lon_range")
        ),
        sa.CheckConstraint("distance_m >= 0", name=op.f("ck_trips_distance_non_negative")),
        sa.CheckConstraint("ended_at >= started_at", name=op.f("ck_trips_ended_after_started")),
        sa.CheckConstraint("last_lat BETWEEN -90 AND 90", name=op.f("ck_trips_last_lat_range")),
        sa.CheckConstraint("last_lon BETWEEN -180 AND 180", name=op.f("ck_trips_last_lon_range")),
        sa.CheckConstraint("origin_lat BETWEEN -90 AND 90", name=op.f("ck_trips_origin_lat_range")),
        sa.CheckConstraint(
            "origin_lon BETWEEN -180 AND 180", name=op.f("ck_trips_origin_lon_range")
        ),
        sa.CheckConstraint("planned_arrival > planned_start", name=op.f("ck_trips_planned_window")),
        sa.CheckConstraint("speed_limit_kmh > 0", name=op.f("ck_trips_speed_limit_positive")),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_trips_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_trips_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trips")),
        comment="Planned and actual journeys of a device.",
    )
    op.create_index("ix_trips_device_id", "trips", ["device_id"], unique=False)
    op.create_index(
        "ix_trips_owner_id_created_at", "trips", ["owner_id", "created_at"], unique=False
    )
    op.create_index(
        "uq_trips_one_active_per_device",
        "trips",
        ["device_id"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column("device_id", sa.Uuid(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=32), server_default="warning", nullable=False),
        sa.Column("status", sa.String(length=32), server_default="open", nullable=False),
        sa.Column("message", sa.Text(), nullable=False, comment="Human-readable summary."),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
            comment="Rule-specific facts (measured speed, limit, distance, ...).",
        ),
        sa.Column(
            "dedupe_key",
            sa.String(length=200),
            nullable=False,
            comment="Deterministic identity of the violation; makes raising idempotent.",
        ),
        sa.Column(
            "request_id",
            sa.String(length=64),
            nullable=True,
            comment="Correlation id of the request that led to the alert.",
        ),
        sa.Column(
            "raised_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "rule IN ('speeding', 'corridor', 'late', 'lost_signal')", name=op.f("ck_alerts_rule")
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_alerts_severity")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_status")
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_alerts_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_alerts_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trip_id"], ["trips.id"], name=op.f("fk_alerts_trip_id_trips"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_alerts_dedupe_key")),
        comment="Alerts raised by the worker on trips.",
    )
    op.create_index("ix_alerts_device_id", "alerts", ["device_id"], unique=False)
    op.create_index(
        "ix_alerts_owner_id_raised_at", "alerts", ["owner_id", "raised_at"], unique=False
    )
    op.create_index("ix_alerts_trip_id_raised_at", "alerts", ["trip_id", "raised_at"], unique=False)
    op.create_table(
        "telemetry_events",
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
        sa.CheckConstraint(
            "accuracy_m >= 0", name=op.f("ck_telemetry_events_accuracy_non_negative")
        ),
        sa.CheckConstraint(
            "heading_deg >= 0 AND heading_deg < 360", name=op.f("ck_telemetry_events_heading_range")
        ),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_telemetry_events_lat_range")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_telemetry_events_lon_range")),
        sa.CheckConstraint("speed_kmh >= 0", name=op.f("ck_telemetry_events_speed_non_negative")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["telemetry_batches.id"],
            name=op.f("fk_telemetry_events_batch_id_telemetry_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_telemetry_events_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["trip_id"],
            ["trips.id"],
            name=op.f("fk_telemetry_events_trip_id_trips"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_events")),
        comment="Position fixes reported by devices.",
    )
    op.create_index("ix_telemetry_events_batch_id", "telemetry_events", ["batch_id"], unique=False)
    op.create_index(
        "ix_telemetry_events_device_id_recorded_at",
        "telemetry_events",
        ["device_id", "recorded_at"],
        unique=False,
    )
    op.create_index(
        "ix_telemetry_events_trip_id_recorded_at",
        "telemetry_events",
        ["trip_id", "recorded_at"],
        unique=False,
    )
    op.create_table(
        "waypoints",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("trip_id", sa.Uuid(), nullable=False),
        sa.Column(
            "seq", sa.Integer(), nullable=False, comment="Visiting order within the trip, from 0."
        ),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.CheckConstraint("lat BETWEEN -90 AND 90", name=op.f("ck_waypoints_lat_range")),
        sa.CheckConstraint("lon BETWEEN -180 AND 180", name=op.f("ck_waypoints_lon_range")),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_waypoints_seq_non_negative")),
        sa.ForeignKeyConstraint(
            ["trip_id"], ["trips.id"], name=op.f("fk_waypoints_trip_id_trips"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waypoints")),
        sa.UniqueConstraint("trip_id", "seq", name=op.f("uq_waypoints_trip_id_seq")),
        comment="Ordered intermediate points of a trip.",
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "last_status_code",
            sa.Integer(),
            nullable=True,
            comment="HTTP status of the last attempt, if any.",
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "request_id",
            sa.String(length=64),
            nullable=True,
            comment="Correlation id, also sent in the X-Request-ID header.",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.CheckConstraint(
            "attempts >= 0", name=op.f("ck_webhook_deliveries_attempts_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_webhook_deliveries_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "endpoint_id", "alert_id", name=op.f("uq_webhook_deliveries_endpoint_id_alert_id")
        ),
        comment="Attempts to deliver alerts to webhook endpoints.",
    )
    op.create_index(
        "ix_webhook_deliveries_alert_id", "webhook_deliveries", ["alert_id"], unique=False
    )
    op.create_index(
        "ix_webhook_deliveries_status_created_at",
        "webhook_deliveries",
        ["status", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    # Dependents first; dropping a table drops its indexes and constraints.
    for table in (
        "webhook_deliveries",
        "waypoints",
        "telemetry_events",
        "alerts",
        "trips",
        "telemetry_batches",
        "webhook_endpoints",
        "jobs",
        "devices",
        "auth_sessions",
        "audit_log",
        "users",
    ):
        op.drop_table(table)
