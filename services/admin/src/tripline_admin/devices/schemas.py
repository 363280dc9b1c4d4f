"""Request and response models of the devices resource, as operators see it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tripline_common.data import NAME_RULE, STORABLE_TEXT, DeviceName
from tripline_common.security import SecretValue
from tripline_common.web import Page, selectable


class DeviceState(StrEnum):
    """Whether a device's key still works."""

    ACTIVE = "active"
    REVOKED = "revoked"


class DeviceFilters(BaseModel):
    """Filters of the device list; they combine with AND."""

    q: str | None = Field(
        default=None,
        max_length=100,
        pattern=STORABLE_TEXT,
        description="Part of the device name, its key prefix (`tl_…`), or its owner's email; or "
        "a device ID.",
    )
    owner_id: uuid.UUID | None = Field(default=None, description="Only this user's devices.")
    state: DeviceState | None = Field(default=None, description="active or revoked.")


class DeviceAdmin(BaseModel):
    """A device as operators see it: never its key, only the key's first characters."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The device's ID.")
    name: str = Field(description="Its name, as the owner calls it.")
    owner_id: uuid.UUID = Field(description="The user who owns it.")
    owner_email: str = Field(description="The owner's login address.")
    api_key_prefix: str = Field(
        description="The first characters of its API key, to tell keys apart.",
        examples=["tl_Xk3v9QaB"],
    )
    created_at: datetime = Field(description="When it was registered (UTC).")
    last_seen_at: datetime | None = Field(description="Its last accepted telemetry batch.")
    revoked_at: datetime | None = Field(
        description="When its key was revoked; a revoked device stays revoked."
    )
    previous_key_expires_at: datetime | None = Field(
        description="Until when the key replaced by the last rotation still works (UTC); null "
        "when no previous key works.",
        examples=["2026-11-28T12:00:00Z"],
    )


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    DeviceListItem = DeviceAdmin
else:
    DeviceListItem = selectable(DeviceAdmin, name="DeviceListItem")


class DevicePage(Page[DeviceListItem]):
    """A page of devices."""


class DeviceCreate(BaseModel):
    """A new device for a user; its API key is generated and shown once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"owner_id": "0b8f5a4e-3c1d-4f7a-9e2b-6d5c4b3a2f10", "name": "Van 12"}]
        },
    )

    owner_id: uuid.UUID = Field(description="The user who will own the device.")
    name: DeviceName = Field(description=f"A name the owner recognises. {NAME_RULE}")


class DeviceWithKey(DeviceAdmin):
    """A device and its new API key. The key is shown this once and stored only as a hash."""

    api_key: SecretValue = Field(
        description="The API key, for the device's `X-Device-Key` header. Not retrievable later.",
        examples=["tl_Xk3v9QaB…"],
    )
