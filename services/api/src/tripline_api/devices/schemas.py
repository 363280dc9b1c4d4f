"""Request and response models of the devices resource. The API key appears in exactly two
responses (registration and rotation) and nowhere else: it is stored only as a hash."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tripline_common.data import NAME_RULE, DeviceName
from tripline_common.security import SecretValue
from tripline_common.web import Page, selectable

PUBLIC_EXAMPLE: dict[str, Any] = {
    "id": "3c2b1a09-8f7e-4d6c-9b5a-1f2e3d4c5b6a",
    "name": "Van 7",
    "api_key_prefix": "tl_Zq3xK9aB",
    "created_at": "2026-11-26T12:00:00Z",
    "last_seen_at": None,
}
KEY_EXAMPLE = "tl_Zq3xK9aB4mN0pQ7rS2tU5vW8xY1zA3bC6dE9fG2hJ5k"


class DeviceCreate(BaseModel):
    """A device to register. The server generates its API key."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "Van 7"}]})

    name: DeviceName = Field(
        description=f"What you call the device (1 to 100 characters). {NAME_RULE}"
    )


class DevicePublic(BaseModel):
    """A device as the API shows it after registration: the key's prefix only."""

    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [PUBLIC_EXAMPLE]}
    )

    id: uuid.UUID = Field(description="The device's ID.")
    name: str = Field(description="What you call the device.")
    api_key_prefix: str = Field(
        description="The first characters of the current key, to tell keys apart; the key itself "
        "cannot be shown again."
    )
    created_at: datetime = Field(description="When the device was registered (UTC).")
    last_seen_at: datetime | None = Field(
        description="When the device last sent accepted telemetry (updated at most every 30 s)."
    )


class DeviceWithKey(DevicePublic):
    """A device with its new API key: returned once, at registration or rotation."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{**PUBLIC_EXAMPLE, "api_key": KEY_EXAMPLE}]},
    )

    api_key: SecretValue = Field(
        description="The ingest API key (send it as `X-Device-Key`). Shown only in this "
        "response: store it now; Tripline keeps only its hash.",
        examples=[KEY_EXAMPLE],
    )


if TYPE_CHECKING:  # mypy takes no model made at run time as a type: it sees the base
    DeviceListItem = DevicePublic
else:
    DeviceListItem = selectable(DevicePublic, name="DeviceListItem")


class DevicePage(Page[DeviceListItem]):
    """A page of devices."""
