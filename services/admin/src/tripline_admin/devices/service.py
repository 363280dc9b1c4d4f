"""Operators' work on devices: list, issue a device with a key, rotate its key, revoke it.

A key is shown once, when it is issued: only its SHA-256 hash and a short prefix are stored
(`tripline_common.security.apikeys`). Ingest looks keys up by hash, so a revoked key is refused as
soon as ingest's short key cache (`DEVICE_KEY_CACHE_TTL_SECONDS`) forgets it. A rotation may keep
the replaced key valid for a grace period (`grace_seconds`), so that a fleet can move to the
new key without a failed upload; with no grace the old key goes like a revoked one. Every
change is audited (never with the key itself).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import CompoundSelect, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tripline_admin.devices.schemas import DeviceFilters, DeviceState
from tripline_admin.search import as_uuid, like_pattern
from tripline_admin.users.service import get_user
from tripline_common.data import AuditActor, AuditOrigin, audit
from tripline_common.data.models import Device, User
from tripline_common.platform import ConflictError, NotFoundError
from tripline_common.security import Principal, issue_api_key
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

DEVICE_SORT = SortSpec(
    columns={"created_at": col(Device.created_at), "name": col(Device.name)},
    tiebreaker=col(Device.id),
    default="-created_at",
)
"""What device lists may be sorted on."""

DEFAULT_KEY_GRACE_SECONDS = 86_400
"""How long the REST rotation keeps the replaced key valid unless told otherwise (24 h)."""
MAX_KEY_GRACE_SECONDS = 7 * 86_400
"""The longest grace period a rotation may give the replaced key (7 days)."""


@dataclass(frozen=True)
class DeviceView:
    """A device with its owner's email: what operators are shown."""

    id: uuid.UUID
    name: str
    owner_id: uuid.UUID
    owner_email: str
    api_key_prefix: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None
    previous_key_expires_at: datetime | None = None

    @classmethod
    def of(cls, device: Device, owner_email: str) -> DeviceView:
        """The view of `device`, owned by `owner_email`."""
        return cls(
            id=device.id,
            name=device.name,
            owner_id=device.owner_id,
            owner_email=owner_email,
            api_key_prefix=device.api_key_prefix,
            created_at=device.created_at,
            last_seen_at=device.last_seen_at,
            revoked_at=device.revoked_at,
            previous_key_expires_at=_live_expiry(device),
        )


def _live_expiry(device: Device) -> datetime | None:
    # A grace period still running; one that ended, or a revoked device, shows as none.
    expires = device.previous_key_expires_at
    if device.revoked_at is not None or expires is None or expires <= datetime.now(UTC):
        return None
    return expires


async def search_devices(
    *, session: AsyncSession, filters: DeviceFilters, page: PageParams
) -> PageResult[DeviceView]:
    """One page of devices matching `filters`, each with its owner's email."""
    statement = select(Device)
    if filters.q and filters.q.strip():
        text = filters.q.strip()
        device_id = as_uuid(text)
        if device_id is not None:
            statement = statement.where(col(Device.id) == device_id)
        else:
            statement = statement.where(col(Device.id).in_(_devices_matching(text)))
    if filters.owner_id is not None:
        statement = statement.where(col(Device.owner_id) == filters.owner_id)
    if filters.state == DeviceState.ACTIVE:
        statement = statement.where(col(Device.revoked_at).is_(None))
    elif filters.state == DeviceState.REVOKED:
        statement = statement.where(col(Device.revoked_at).is_not(None))
    result = await fetch_page(session, statement, page, DEVICE_SORT)
    emails = await _owner_emails(session, {device.owner_id for device in result.rows})
    views = [DeviceView.of(device, emails.get(device.owner_id, "")) for device in result.rows]
    return PageResult(
        rows=views,
        next_cursor=result.next_cursor,
        prev_cursor=result.prev_cursor,
        has_next=result.has_next,
        has_prev=result.has_prev,
        total=result.total,
    )


def _devices_matching(text: str) -> CompoundSelect[tuple[uuid.UUID]]:
    # A union rather than one OR: each branch is looked up in its own (trigram) index, where
    # an OR with the owner subquery could only be checked row by row.
    pattern = like_pattern(text)
    owners = select(col(User.id)).where(col(User.email).ilike(pattern, escape="\\"))
    return union(
        select(col(Device.id)).where(col(Device.name).ilike(pattern, escape="\\")),
        select(col(Device.id)).where(col(Device.api_key_prefix).ilike(pattern, escape="\\")),
        select(col(Device.id)).where(col(Device.owner_id).in_(owners)),
    )


async def _owner_emails(session: AsyncSession, owner_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not owner_ids:
        return {}
    rows = await session.execute(
        select(col(User.id), col(User.email)).where(col(User.id).in_(owner_ids))
    )
    return {user_id: email for user_id, email in rows.all()}


async def get_device(
    *, session: AsyncSession, device_id: uuid.UUID, lock: bool = False
) -> DeviceView:
    """The device with its owner's email, or 404."""
    device = await _load(session, device_id, lock=lock)
    emails = await _owner_emails(session, {device.owner_id})
    return DeviceView.of(device, emails.get(device.owner_id, ""))


async def _load(session: AsyncSession, device_id: uuid.UUID, *, lock: bool) -> Device:
    statement = select(Device).where(col(Device.id) == device_id)
    if lock:
        statement = statement.with_for_update()
    device = await session.scalar(statement)
    if device is None:
        raise NotFoundError("Device not found.", code="device_not_found")
    return device


async def issue_device(
    *,
    session: AsyncSession,
    actor: Principal,
    owner_id: uuid.UUID,
    name: str,
    origin: AuditOrigin,
) -> tuple[DeviceView, str]:
    """Register a device for `owner_id` with a new key; returns the device and the key."""
    owner = await get_user(session=session, user_id=owner_id)
    issued = issue_api_key()
    device = Device(
        owner_id=owner.id,
        name=name,
        api_key_prefix=issued.prefix,
        api_key_hash=issued.key_hash,
    )
    session.add(device)
    await session.flush()
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="device.issue",
        target_type="device",
        target_id=device.id,
        details={"name": name, "owner": owner.email, "key_prefix": issued.prefix},
        origin=origin,
    )
    return DeviceView.of(device, owner.email), issued.key


async def rotate_key(
    *,
    session: AsyncSession,
    actor: Principal,
    device_id: uuid.UUID,
    origin: AuditOrigin,
    grace_seconds: int = 0,
) -> tuple[DeviceView, str]:
    """Give a device a new key. The old one keeps working for `grace_seconds` (0: refused from
    its next use), and a key kept from an earlier rotation stops at once: at most two keys work
    at any time. 409 once revoked."""
    if not 0 <= grace_seconds <= MAX_KEY_GRACE_SECONDS:
        raise ValueError(f"grace_seconds must be within 0..{MAX_KEY_GRACE_SECONDS}")
    device = await _load(session, device_id, lock=True)
    if device.revoked_at is not None:
        raise ConflictError(
            "This device is revoked; register a new device instead.", code="device_revoked"
        )
    issued = issue_api_key()
    previous = device.api_key_prefix
    if grace_seconds:
        device.previous_api_key_hash = device.api_key_hash
        device.previous_key_expires_at = datetime.now(UTC) + timedelta(seconds=grace_seconds)
    else:
        device.previous_api_key_hash = None
        device.previous_key_expires_at = None
    device.api_key_prefix = issued.prefix
    device.api_key_hash = issued.key_hash
    await session.flush()
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="device.key_rotate",
        target_type="device",
        target_id=device.id,
        details={
            "name": device.name,
            "old_key_prefix": previous,
            "key_prefix": issued.prefix,
            "grace_seconds": grace_seconds,
        },
        origin=origin,
    )
    return await get_device(session=session, device_id=device.id), issued.key


async def revoke_device(
    *, session: AsyncSession, actor: Principal, device_id: uuid.UUID, origin: AuditOrigin
) -> DeviceView:
    """Revoke a device's keys for good, the current one and any previous one still in its grace
    period (idempotent; audited the first time)."""
    device = await _load(session, device_id, lock=True)
    if device.revoked_at is None:
        device.revoked_at = datetime.now(UTC)
        device.previous_api_key_hash = None
        device.previous_key_expires_at = None
        await session.flush()
        await audit.record(
            session,
            actor=AuditActor.of(actor),
            action="device.revoke",
            target_type="device",
            target_id=device.id,
            details={"name": device.name, "key_prefix": device.api_key_prefix},
            origin=origin,
        )
    return await get_device(session=session, device_id=device.id)


async def devices_of(*, session: AsyncSession, owner_id: uuid.UUID) -> list[DeviceView]:
    """A user's devices, newest first (a user has a handful, so no paging)."""
    owner = await get_user(session=session, user_id=owner_id)
    devices = await session.scalars(
        select(Device)
        .where(col(Device.owner_id) == owner_id)
        .order_by(col(Device.created_at).desc(), col(Device.id))
        .limit(200)
    )
    return [DeviceView.of(device, owner.email) for device in devices]
