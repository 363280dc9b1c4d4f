"""Session hardening: the spent refresh tokens of each session, so presenting one again revokes
the session (reuse detection), and the idle deadline of API sessions (docs/operations.md,
"Sessions").

Revision ID: 0005_refresh_token_family
Revises: 0004_key_rotation_overlap
Create Date: 2026-12-07 04:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_refresh_token_family"
down_revision: str | Sequence[str] | None = "0004_key_rotation_overlap"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).

OLD_LAST_SEEN_COMMENT = "Last authenticated request (writes may be throttled)."
LAST_SEEN_COMMENT = (
    "Last use: for API sessions the last login or refresh (at most one access-token lifetime "
    "old while in use), for console sessions the last request (written at most once a minute)."
)


def upgrade() -> None:
    # A nullable column without a default: PostgreSQL adds it without rewriting the table.
    # Sessions opened before this revision get their deadline at their next refresh.
    op.add_column(
        "auth_sessions",
        sa.Column(
            "idle_expires_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="API sessions end when not refreshed by then (each login and refresh sets "
            "it to now + API_SESSION_IDLE_TIMEOUT_SECONDS); null for console sessions.",
        ),
    )
    op.alter_column(
        "auth_sessions",
        "last_seen_at",
        existing_type=sa.DateTime(timezone=True),
        existing_nullable=True,
        comment=LAST_SEEN_COMMENT,
        existing_comment=OLD_LAST_SEEN_COMMENT,
    )
    op.create_table(
        "used_refresh_tokens",
        sa.Column(
            "token_hash",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 hex of a refresh token that was rotated away.",
        ),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_used_refresh_tokens_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_used_refresh_tokens")),
        comment="Hashes of the spent refresh tokens of each session (reuse detection).",
    )
    op.create_index(
        "ix_used_refresh_tokens_session_id", "used_refresh_tokens", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_used_refresh_tokens_session_id", table_name="used_refresh_tokens")
    op.drop_table("used_refresh_tokens")
    op.alter_column(
        "auth_sessions",
        "last_seen_at",
        existing_type=sa.DateTime(timezone=True),
        existing_nullable=True,
        comment=OLD_LAST_SEEN_COMMENT,
        existing_comment=LAST_SEEN_COMMENT,
    )
    op.drop_column("auth_sessions", "idle_expires_at")
