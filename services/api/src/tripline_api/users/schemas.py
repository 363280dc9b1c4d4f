"""Request and response models of the users resource (never the table model itself)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tripline_api.accounts.schemas import EMAIL_RULE, PASSWORD_RULES
from tripline_common.data import NAME_RULE, NameText
from tripline_common.data.models import UserRole
from tripline_common.security import PASSWORD_MAX_LENGTH

DisplayName = Annotated[str, NameText(100)]


class UserBase(BaseModel):
    """Fields a user chooses."""

    email: EmailStr = Field(description=f"Login address; unique, case-insensitive. {EMAIL_RULE}")
    display_name: DisplayName = Field(
        description=f"Name shown to other people and operators. {NAME_RULE}"
    )


class UserCreate(UserBase):
    """Registration: the account's fields and a password."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "display_name": "Ada", "password": "violet tractor 42"}
            ]
        },
    )

    password: str = Field(
        max_length=PASSWORD_MAX_LENGTH,
        description=f"{PASSWORD_RULES} Stored as an Argon2 hash.",
    )


class UserPublic(BaseModel):
    """A user as the API shows it: no password hash, no internal flags.

    Not derived from `UserBase`: stored emails were validated on the way in, and re-validating
    every one on the way out (email-validator) cost more than the rest of `GET /users/me`.
    """

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10",
                    "email": "ada@example.com",
                    "display_name": "Ada",
                    "role": "user",
                    "created_at": "2026-11-26T12:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID = Field(description="The user's ID.")
    email: str = Field(description="Login address.")
    display_name: str = Field(description="Name shown to other people and operators.")
    role: UserRole = Field(description="user, operator or admin.")
    created_at: datetime = Field(description="When the account was created (UTC).")
