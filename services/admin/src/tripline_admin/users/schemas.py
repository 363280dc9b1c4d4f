"""Request and response models of the users resource, as operators see it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tripline_common.data import STORABLE_TEXT
from tripline_common.data.models import AuthSession, SessionKind, UserRole
from tripline_common.web import Page, selectable


class UserFilters(BaseModel):
    """Filters of the user search; they combine with AND."""

    q: str | None = Field(
        default=None,
        max_length=100,
        pattern=STORABLE_TEXT,
        description="Part of the email or display name (case-insensitive), or a user ID.",
        examples=["ada@"],
    )
    role: UserRole | None = Field(default=None, description="Only users with this role.")
    active: bool | None = Field(
        default=None, description="true: only enabled accounts; false: only disabled ones."
    )


# Declared apart from the public API's `UserPublic` on purpose, though five fields read alike:
# two published contracts for two audiences, each free to change on its own (the OpenAPI
# snapshots guard both). A shared base would tie the admin document to the public one.
class UserAdmin(BaseModel):
    """A user account as operators see it (never the password hash)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10",
                    "email": "ada@example.com",
                    "display_name": "Ada",
                    "role": "user",
                    "is_active": True,
                    "created_at": "2026-11-26T12:00:00Z",
                    "last_login_at": "2026-11-27T08:30:00Z",
                }
            ]
        },
    )

    id: uuid.UUID = Field(description="The user's ID.")
    email: str = Field(description="Login address.")
    display_name: str = Field(description="Name shown to other people and operators.")
    role: UserRole = Field(description="user, operator or admin.")
    is_active: bool = Field(description="False: the account is disabled and cannot log in.")
    created_at: datetime = Field(description="When the account was created (UTC).")
    last_login_at: datetime | None = Field(description="The latest login, if any (UTC).")


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    UserListItem = UserAdmin
else:
    UserListItem = selectable(UserAdmin, name="UserListItem")


class UserPage(Page[UserListItem]):
    """A page of users."""


class RoleChange(BaseModel):
    """The role to give a user."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"role": "operator"}]}
    )

    role: UserRole = Field(description="user, operator or admin.")


class SessionAdmin(BaseModel):
    """One of a user's sessions: an API login or a console login."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Session ID.")
    kind: SessionKind = Field(description="`api` (bearer tokens) or `console` (browser cookie).")
    created_at: datetime = Field(description="When the login happened.")
    last_seen_at: datetime | None = Field(description="Last use (refresh or console request).")
    expires_at: datetime = Field(description="When the session ends at the latest.")
    revoked_at: datetime | None = Field(description="When it was revoked, if it was.")
    revoked_reason: str | None = Field(description="Why: logout, revoked_by_operator, ...")
    user_agent: str | None = Field(description="The client's User-Agent at login.")
    ip: str | None = Field(description="The client's address at login.")
    active: bool = Field(description="Neither revoked nor expired.")

    @classmethod
    def of(cls, row: AuthSession, now: datetime) -> SessionAdmin:
        """The view of a session row at time `now`."""
        active = row.revoked_at is None and row.expires_at > now
        return cls.model_validate({**row.model_dump(), "active": active})


class SessionsRevoked(BaseModel):
    """How many live sessions a bulk revocation ended."""

    revoked: int = Field(description="Sessions that were live and are now revoked.", examples=[2])
