"""Request and response models of authentication and sessions."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tripline_common.security import SecretValue


class TokenPair(BaseModel):
    """An OAuth2 bearer token response, plus the refresh token (shown once)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": "q8oV0m2k5kQ3...",
                }
            ]
        }
    )

    access_token: SecretValue = Field(description="JWT to send as `Authorization: Bearer <token>`.")
    token_type: str = Field("bearer", description="Always `bearer`.")
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: SecretValue = Field(
        description="Exchange at /v1/auth/refresh for a new pair; once."
    )


class RefreshRequest(BaseModel):
    """A refresh token to rotate."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=16, max_length=256, description="The refresh token.")


class SessionPublic(BaseModel):
    """One of the user's sessions (a login on some device)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="Session ID (the `sid` claim of its tokens).")
    kind: str = Field(description="`api` or `console`.")
    created_at: datetime = Field(description="When the login happened.")
    last_seen_at: datetime | None = Field(description="Last token refresh.")
    expires_at: datetime = Field(description="When the session ends at the latest.")
    revoked_at: datetime | None = Field(description="When it was revoked, if it was.")
    user_agent: str | None = Field(description="The client's User-Agent at login.")
    ip: str | None = Field(description="The client's address at login.")
    current: bool = Field(False, description="True for the session of this request's token.")
