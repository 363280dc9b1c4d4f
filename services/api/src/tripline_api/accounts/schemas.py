"""Request and response models of the account endpoints (sign-up answer, tokens, passwords)."""

from __future__ import annotations

from typing import Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tripline_common.security import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH

PASSWORD_RULES = (
    f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters, not blank, not a commonly "
    "used or breached password, and not containing your email address."
)
EMAIL_RULE = (
    "An address as `email-validator` reads it: the domain needs a dot, and special-use names "
    f"are refused ({', '.join(f'`.{name}`' for name in SPECIAL_USE_DOMAIN_NAMES)})."
)
SIGN_UP_MESSAGE = (
    "Check your inbox: we sent a message to this address. Follow the link in it to finish "
    "signing up."
)
RESET_MESSAGE = "If an account uses this address, we sent a password-reset link to it."


class SignUpAccepted(BaseModel):
    """The answer to every sign-up, whether or not the address already has an account."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "check_email", "message": SIGN_UP_MESSAGE}]}
    )

    status: Literal["check_email"] = Field(description="Always `check_email`.")
    message: str = Field(description="What to do next; the same for every sign-up.")


class TokenIn(BaseModel):
    """A token from a mailed link."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="The token from the link.")


class EmailVerified(BaseModel):
    """The address is confirmed; the account can log in."""

    status: Literal["verified"] = Field(description="Always `verified`.")


class PasswordResetRequest(BaseModel):
    """Ask for a password-reset link."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(description=f"The account's address. {EMAIL_RULE}")


class ResetRequested(BaseModel):
    """The answer to every reset request, whether or not the address has an account."""

    status: Literal["check_email"] = Field(description="Always `check_email`.")
    message: str = Field(description="The same for every request.")


class PasswordReset(BaseModel):
    """Set a new password with a reset token."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200, description="The token from the link.")
    new_password: str = Field(max_length=PASSWORD_MAX_LENGTH, description=PASSWORD_RULES)


class PasswordChange(BaseModel):
    """Change the password of the logged-in user."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=PASSWORD_MAX_LENGTH)
    new_password: str = Field(max_length=PASSWORD_MAX_LENGTH, description=PASSWORD_RULES)
