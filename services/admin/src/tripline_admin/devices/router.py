"""`/v1/devices`: list devices, issue one with a key, rotate its key, revoke it.
Declarations only; the work happens in `devices.service`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from tripline_admin.access import conflict, not_found
from tripline_admin.devices import service
from tripline_admin.devices.schemas import (
    DeviceAdmin,
    DeviceCreate,
    DeviceFilters,
    DevicePage,
    DeviceWithKey,
)
from tripline_common.data import AuditOriginDep
from tripline_common.web import (
    INVALID_LIST_QUERY,
    OperatorUser,
    PageParams,
    SessionDep,
    links,
    page_params,
)

router = APIRouter(prefix="/devices", tags=["devices"])

DeviceId = Annotated[uuid.UUID, Path(description="The device's ID.")]
DevicePageParams = Annotated[PageParams, Depends(page_params(service.DEVICE_SORT, DevicePage))]
NO_DEVICE = not_found("device")


@router.get(
    "",
    response_model=DevicePage,
    summary="List devices",
    description="Devices matching a part of their name, key prefix or owner's email, an owner "
    "and a state; a page at a time.",
    responses=INVALID_LIST_QUERY,
)
async def list_devices(
    session: SessionDep, filters: Annotated[DeviceFilters, Query()], page: DevicePageParams
) -> DevicePage:
    result = await service.search_devices(session=session, filters=filters, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceWithKey,
    summary="Issue a device and its API key",
    description="Registers a device for a user and returns its API key, **shown this once** "
    "(stored only as a hash). Audited as `device.issue` (without the key).",
    responses={
        **not_found("owner"),
        201: {
            "description": "Issued.",
            "links": links(
                "device_id", "$response.body#/id", "get_device", "rotate_key", "revoke_device"
            ),
        },
    },
)
async def issue_device(
    body: DeviceCreate,
    actor: OperatorUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> DeviceWithKey:
    device, key = await service.issue_device(
        session=session, actor=actor, owner_id=body.owner_id, name=body.name, origin=origin
    )
    return DeviceWithKey.model_validate({**vars(device), "api_key": key})


@router.get(
    "/{device_id}",
    response_model=DeviceAdmin,
    summary="View a device",
    description="One device (never its key).",
    responses=NO_DEVICE,
)
async def get_device(device_id: DeviceId, session: SessionDep) -> DeviceAdmin:
    return DeviceAdmin.model_validate(
        await service.get_device(session=session, device_id=device_id)
    )


@router.post(
    "/{device_id}/key",
    response_model=DeviceWithKey,
    summary="Rotate a device's API key",
    description="Issues a new key, returned **this once**. The old key keeps working for "
    "`grace_seconds` (24 h by default), so the device can be moved to the new key without a "
    "refused upload; `previous_key_expires_at` says until when. With `grace_seconds=0` the old "
    "key is refused from then on (within ingest's key cache lifetime, "
    "`DEVICE_KEY_CACHE_TTL_SECONDS`, a few seconds). A key kept by an earlier rotation stops "
    "at once, and revoking the device stops both. Audited as `device.key_rotate`.",
    responses={**NO_DEVICE, **conflict("The device is revoked (`device_revoked`).")},
)
async def rotate_key(
    device_id: DeviceId,
    actor: OperatorUser,
    session: SessionDep,
    origin: AuditOriginDep,
    grace_seconds: Annotated[
        int,
        Query(
            ge=0,
            le=service.MAX_KEY_GRACE_SECONDS,
            description="Seconds the old key keeps working, 0 (refused at once) to "
            f"{service.MAX_KEY_GRACE_SECONDS} (7 days).",
            examples=[service.DEFAULT_KEY_GRACE_SECONDS],
        ),
    ] = service.DEFAULT_KEY_GRACE_SECONDS,
) -> DeviceWithKey:
    device, key = await service.rotate_key(
        session=session,
        actor=actor,
        device_id=device_id,
        origin=origin,
        grace_seconds=grace_seconds,
    )
    return DeviceWithKey.model_validate({**vars(device), "api_key": key})


@router.post(
    "/{device_id}/revoke",
    response_model=DeviceAdmin,
    summary="Revoke a device",
    description="Revokes the device's key for good, and a previous key still in its grace "
    "period with it: ingest refuses both from then on (within "
    "its key cache lifetime, `DEVICE_KEY_CACHE_TTL_SECONDS`). Idempotent. Audited as "
    "`device.revoke`.",
    responses=NO_DEVICE,
)
async def revoke_device(
    device_id: DeviceId, actor: OperatorUser, session: SessionDep, origin: AuditOriginDep
) -> DeviceAdmin:
    device = await service.revoke_device(
        session=session, actor=actor, device_id=device_id, origin=origin
    )
    return DeviceAdmin.model_validate(device)
