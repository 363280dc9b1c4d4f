"""Identity tables: user accounts, their server-side (revocable) sessions, mailed tokens."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, Text, func, text
from sqlmodel import Field

from tripline_common.data.models.base import (
    TriplineModel,
    created_at_field,
    enum_check,
    enum_field,
    timestamp_field,
    updated_at_field,
    uuid_pk_field,
)


class UserRole(StrEnum):
    """What a user may do: `operator` and `admin` reach the admin app."""

    USER = "user"
    OPERATOR = "operator"
    ADMIN = "admin"


class SessionKind(StrEnum):
    """Which client a session belongs to: the public API (JWT) or the admin console (cookie)."""

    API = "api"
    CONSOLE = "console"


class User(TriplineModel, table=True):
    """A person who logs in: plans trips, owns devices, or operates the system."""

    __tablename__ = "users"
    __table_args__ = (
        # Case-insensitive uniqueness; the address keeps the case the user typed.
        # Look users up with `func.lower(User.email) == email.lower()` to use this index.
        Index("uq_users_email_lower", func.lower(text("email")), unique=True),
        # The admin's list, by each of its sorts.
        Index("ix_users_created_at_id", "created_at", "id"),
        Index("ix_users_email_id", "email", "id"),
        enum_check("role", UserRole),
        {"comment": "User accounts."},
    )

    id: uuid.UUID = uuid_pk_field()
    email: str = Field(
        sa_type=String(320),
        sa_column_kwargs={"comment": "As typed by the user; unique ignoring case."},
    )
    password_hash: str = Field(
        sa_type=String(255),
        sa_column_kwargs={"comment": "Argon2/bcrypt hash (PHC string); never the password."},
    )
    display_name: str = Field(sa_type=String(100))
    role: UserRole = enum_field(UserRole, UserRole.USER)
    is_active: bool = Field(
        default=True,
        sa_column_kwargs={
            "server_default": text("true"),
            "comment": "False disables login and every session at once.",
        },
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
    last_login_at: datetime | None = timestamp_field()
    email_verified_at: datetime | None = timestamp_field(
        comment="When the user proved they read this address; null: cannot log in yet."
    )


class AuthSession(TriplineModel, table=True):
    """A login. Access tokens carry its id, so revoking the row ends the session immediately."""

    __tablename__ = "auth_sessions"
    __table_args__ = (
        enum_check("kind", SessionKind),
        Index("ix_auth_sessions_user_id", "user_id"),
        # The cleanup cron deletes sessions long past expiry.
        Index("ix_auth_sessions_expires_at", "expires_at"),
        {"comment": "Server-side login sessions (API and admin console)."},
    )

    id: uuid.UUID = uuid_pk_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: SessionKind = enum_field(SessionKind, SessionKind.API)
    created_at: datetime = created_at_field()
    expires_at: datetime = timestamp_field(required=True)
    last_seen_at: datetime | None = timestamp_field(
        comment="Last use: for API sessions the last login or refresh (at most one "
        "access-token lifetime old while in use), for console sessions the last request "
        "(written at most once a minute)."
    )
    revoked_at: datetime | None = timestamp_field(comment="Set by logout or by an operator.")
    revoked_reason: str | None = Field(default=None, sa_type=String(200))
    refresh_token_hash: str | None = Field(
        default=None,
        unique=True,
        sa_type=String(64),
        sa_column_kwargs={"comment": "SHA-256 hex of the current refresh token (rotated on use)."},
    )
    user_agent: str | None = Field(default=None, sa_type=Text)
    # Text rather than INET: ASGI test clients report hosts such as "testclient", and an odd
    # peer address must never make a login fail. 45 characters fit any IPv6 text form.
    ip: str | None = Field(
        default=None,
        sa_type=String(45),
        sa_column_kwargs={"comment": "Client address at login (IPv4 or IPv6 text)."},
    )
    idle_expires_at: datetime | None = timestamp_field(
        comment="API sessions end when not refreshed by then (each login and refresh sets it "
        "to now + API_SESSION_IDLE_TIMEOUT_SECONDS); null for console sessions."
    )


class UsedRefreshToken(TriplineModel, table=True):
    """A refresh token already rotated away: presenting it again revokes its session (leak)."""

    __tablename__ = "used_refresh_tokens"
    __table_args__ = (
        # Deleting a session (logout leaves it; the expiry cron deletes it) deletes its rows.
        Index("ix_used_refresh_tokens_session_id", "session_id"),
        {"comment": "Hashes of the spent refresh tokens of each session (reuse detection)."},
    )

    token_hash: str = Field(
        primary_key=True,
        sa_type=String(64),
        sa_column_kwargs={"comment": "SHA-256 hex of a refresh token that was rotated away."},
    )
    session_id: uuid.UUID = Field(foreign_key="auth_sessions.id", ondelete="CASCADE")
    used_at: datetime = created_at_field()


class AccountTokenPurpose(StrEnum):
    """What a mailed account token allows: confirming the address, or setting a new password."""

    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a secret.


class AccountToken(TriplineModel, table=True):
    """A single-use token mailed to a user (email verification, password reset).

    The API adds the row; the worker draws the random token, stores only its SHA-256 and mails
    the token, so the token itself is never in the database nor in the job queue.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (
        enum_check("purpose", AccountTokenPurpose),
        Index("ix_account_tokens_user_id", "user_id"),
        {"comment": "Single-use tokens mailed for email verification and password reset."},
    )

    id: uuid.UUID = uuid_pk_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    purpose: AccountTokenPurpose = enum_field(AccountTokenPurpose)
    token_hash: str | None = Field(
        default=None,
        unique=True,
        sa_type=String(64),
        sa_column_kwargs={"comment": "SHA-256 hex of the mailed token; null until mailed."},
    )
    password_hash: str | None = Field(
        default=None,
        sa_type=String(255),
        sa_column_kwargs={
            "comment": "verify_email: the password of the sign-up this link confirms (Argon2)."
        },
    )
    created_at: datetime = created_at_field()
    expires_at: datetime = timestamp_field(required=True)
    used_at: datetime | None = timestamp_field(comment="Set when used or superseded.")
