"""Email verification and password reset: `users.email_verified_at` and the `account_tokens`
table (docs/operations.md, "Mail").

Accounts that exist before this revision predate verification: they are marked verified, so
nobody who could log in yesterday is locked out today.

Revision ID: 0006_account_tokens
Revises: 0005_refresh_token_family
Create Date: 2026-12-07 04:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_account_tokens"
down_revision: str | Sequence[str] | None = "0005_refresh_token_family"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
phase = "expand"  # Only adds: the previous release runs on it (migrations/phases.py).


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "email_verified_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the user proved they read this address; null: cannot log in yet.",
        ),
    )
    op.execute("UPDATE users SET email_verified_at = created_at WHERE email_verified_at IS NULL")
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column(
            "token_hash",
            sa.String(length=64),
            nullable=True,
            comment="SHA-256 hex of the mailed token; null until mailed.",
        ),
        sa.Column(
            "password_hash",
            sa.String(length=255),
            nullable=True,
            comment="verify_email: the password of the sign-up this link confirms (Argon2).",
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "used_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Set when used or superseded.",
        ),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'reset_password')",
            name=op.f("ck_account_tokens_purpose"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_account_tokens_token_hash")),
        comment="Single-use tokens mailed for email verification and password reset.",
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_account_tokens_user_id", table_name="account_tokens")
    op.drop_table("account_tokens")
    op.drop_column("users", "email_verified_at")
