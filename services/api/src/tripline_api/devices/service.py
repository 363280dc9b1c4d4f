"""Devices: register a user's telemetry sources, issue, rotate and revoke their ingest API
keys. Nothing here knows about HTTP.

Keys come from `tripline_common.security.apikeys`: only the SHA-256 hash and a display prefix are
stored, so the key is handed to the caller once and never again. Revoked devices are kept (their
trips and alerts still refer to them) but disappear from the API: every query here skips them.
The ingest app caches key lookups for `DEVICE_KEY_CACHE_TTL_SECONDS` (10 s by default), so a
revoked or rotated-out key may still be accepted for that long on each ingest replica.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data.models import Device
from tripline_common.platform import NotFoundError
from tripline_common.security import issue_api_key
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

DEVICE_SORT = SortSpec(
    columns={"created_at": col(Device.created_at), "name": col(Device.name)},
    tiebreaker=col(Device.id),
    default="-created_at",
)
"""What device lists may be sorted on (NOT NULL columns only: keyset paging needs them)."""


@dataclass(frozen=True)
class DeviceWithNewKey:
    """A device and the key just issued for it (to show once)."""

    device: Device
    api_key: str


def device_not_found() -> NotFoundError:
    return NotFoundError("Device not found.", code="device_not_found")


def _live_devices_of(owner_id: uuid.UUID) -> Select[Device]:
    return select(Device).where(col(Device.owner_id) == owner_id, col(Device.revoked_at).is_(None))


async def register_device(
    *, session: AsyncSession, owner_id: uuid.UUID, name: str
) -> DeviceWithNewKey:
    """A new device of the owner with a fresh key (returned here, stored hashed)."""
    issued = issue_api_key()
    device = Device(
        owner_id=owner_id, name=name, api_key_prefix=issued.prefix, api_key_hash=issued.key_hash
    )
    session.add(device)
    await session.flush()
    return DeviceWithNewKey(device, issued.key)


async def list_devices(
    *, session: AsyncSession, owner_id: uuid.UUID, page: PageParams
) -> PageResult[Device]:
    """One page of the owner's devices that are not revoked."""
    return await fetch_page(session, _live_devices_of(owner_id), page, DEVICE_SORT)


async def _find(
    session: AsyncSession, owner_id: uuid.UUID, device_id: uuid.UUID, *, lock: bool = False
) -> Device:
    statement = _live_devices_of(owner_id).where(col(Device.id) == device_id)
    if lock:
        statement = statement.with_for_update()
    device = await session.scalar(statement)
    if device is None:
        raise device_not_found()
    return device


async def get_device(*, session: AsyncSession, owner_id: uuid.UUID, device_id: uuid.UUID) -> Device:
    """The owner's device, or 404 (also when it was revoked)."""
    return await _find(session, owner_id, device_id)


async def revoke_device(
    *, session: AsyncSession, owner_id: uuid.UUID, device_id: uuid.UUID
) -> None:
    """Revoke the device's key for good (`revoked_at` is never un-set); 404 when it is not
    the owner's or already revoked."""
    device = await _find(session, owner_id, device_id, lock=True)
    device.revoked_at = datetime.now(UTC)
    await session.flush()


async def rotate_device_key(
    *, session: AsyncSession, owner_id: uuid.UUID, device_id: uuid.UUID
) -> DeviceWithNewKey:
    """Replace the device's key: the new one is returned once; the old one stops matching."""
    device = await _find(session, owner_id, device_id, lock=True)
    issued = issue_api_key()
    device.api_key_prefix = issued.prefix
    device.api_key_hash = issued.key_hash
    device.previous_api_key_hash = None  # Nor does a key kept by an operator's rotation.
    device.previous_key_expires_at = None
    await session.flush()
    return DeviceWithNewKey(device, issued.key)
