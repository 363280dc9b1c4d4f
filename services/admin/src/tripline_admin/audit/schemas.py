"""Response models and filters of the audit log (read-only: there is nothing to write)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tripline_common.data import STORABLE_TEXT
from tripline_common.web import IsoDateTime, Page, selectable


class AuditFilters(BaseModel):
    """Filters of the audit log; they combine with AND."""

    action: str | None = Field(
        default=None,
        max_length=64,
        pattern=STORABLE_TEXT,
        description="An action (`user.disable`), or every action of a kind with a trailing dot "
        "(`user.`).",
        examples=["user."],
    )
    actor: str | None = Field(
        default=None,
        max_length=320,
        pattern=STORABLE_TEXT,
        description="Part of the acting user's email (`system` for the platform), or their ID.",
    )
    target_type: str | None = Field(
        default=None,
        max_length=64,
        pattern=STORABLE_TEXT,
        description="Kind of object acted on: user, device, job...",
    )
    target_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=STORABLE_TEXT,
        description="The ID of the object acted on.",
    )
    request_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=STORABLE_TEXT,
        description="The correlation ID of the request.",
    )
    since: IsoDateTime | None = Field(
        default=None, description="Entries at or after this time (inclusive)."
    )
    until: IsoDateTime | None = Field(
        default=None,
        description="Entries before this time (exclusive). With `since`, it must be later than "
        "`since`: an equal or earlier one is a 422.",
    )

    @model_validator(mode="after")
    def _range_in_order(self) -> Self:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be later than since")
        return self


class AuditEntry(BaseModel):
    """One recorded action: who did what to which object, when, and from where."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "created_at": "2026-11-28T09:15:02Z",
                    "actor_id": "6f1c2b1e-2d9e-4a8e-9a51-0f7f7c1d2e3a",
                    "actor_label": "operator@tripline.dev",
                    "action": "user.disable",
                    "target_type": "user",
                    "target_id": "0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10",
                    "details": {"email": "ada@example.com", "sessions_revoked": 2},
                    "request_id": "4b0d1f3c9a7e4e0e8d2f6a1b5c3d7e9f",
                    "source_ip": "10.0.3.17",
                }
            ]
        },
    )

    id: int = Field(description="Entry number; increases with time.")
    created_at: datetime = Field(description="When it happened (UTC).")
    actor_id: uuid.UUID | None = Field(description="The user who acted; null for the system.")
    actor_label: str | None = Field(description="Who acted, as text (kept if the user goes).")
    action: str = Field(description="What they did: a dotted verb such as `user.disable`.")
    target_type: str | None = Field(description="Kind of object acted on.")
    target_id: str | None = Field(description="Its ID.")
    details: dict[str, Any] = Field(description="Facts of the action (never secrets).")
    request_id: str | None = Field(description="Correlation ID of the request.")
    source_ip: str | None = Field(description="The client's address.")


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    AuditListItem = AuditEntry
else:
    AuditListItem = selectable(AuditEntry, name="AuditListItem")


class AuditPage(Page[AuditListItem]):
    """A page of the audit log."""
