"""`/v1/devices` endpoints: declarations only; the work happens in `devices.service`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from tripline_api.devices import service
from tripline_api.devices.schemas import DeviceCreate, DevicePage, DevicePublic, DeviceWithKey
from tripline_api.responses import INVALID_LIST_QUERY, UNAUTHORIZED, documented_error
from tripline_common.web import CurrentUser, PageParams, SessionDep, links, page_params

NOT_FOUND = documented_error(404, "No such device among yours (or it was revoked).")
KEY_CACHE_NOTE = (
    "Ingest replicas cache key lookups for up to `DEVICE_KEY_CACHE_TTL_SECONDS` (10 s by "
    "default), so the old key may be accepted for that long."
)

router = APIRouter(prefix="/devices", tags=["devices"], responses=UNAUTHORIZED)

DeviceId = Annotated[uuid.UUID, Path(description="The device's ID.")]
DevicePageParams = Annotated[PageParams, Depends(page_params(service.DEVICE_SORT, DevicePage))]


def _with_key(issued: service.DeviceWithNewKey) -> DeviceWithKey:
    return DeviceWithKey.model_validate(
        {**DevicePublic.model_validate(issued.device).model_dump(), "api_key": issued.api_key}
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeviceWithKey,
    summary="Register a device",
    description="Registers a telemetry source and returns its ingest API key (`api_key`). The "
    "key is shown only in this response: Tripline stores its SHA-256 hash, so a lost key "
    "cannot be recovered, only rotated. `Location` points to the device.",
    responses={
        201: {
            "description": "Registered.",
            "headers": {"Location": {"description": "The device."}},
            "links": links(
                "device_id",
                "$response.body#/id",
                "get_device",
                "rotate_device_key",
                "revoke_device",
            ),
        }
    },
)
async def register_device(
    data: DeviceCreate, user: CurrentUser, session: SessionDep, request: Request, response: Response
) -> DeviceWithKey:
    issued = await service.register_device(session=session, owner_id=user.id, name=data.name)
    response.headers["Location"] = str(request.url_for("get_device", device_id=issued.device.id))
    return _with_key(issued)


@router.get(
    "",
    response_model=DevicePage,
    summary="List your devices",
    description="Your devices that are not revoked, a page at a time (`limit` + `offset`, or "
    "the opaque `cursor`); sort on `created_at` or `name`; narrow items with `fields`. Keys "
    "are never listed, only their prefixes.",
    responses=INVALID_LIST_QUERY,
)
async def list_devices(
    user: CurrentUser, session: SessionDep, page: DevicePageParams
) -> DevicePage:
    result = await service.list_devices(session=session, owner_id=user.id, page=page)
    return page.respond(result)  # type: ignore[no-any-return]


@router.get(
    "/{device_id:uuid}",
    name="get_device",
    response_model=DevicePublic,
    summary="Get a device",
    description="One of your devices (without its key). A revoked device is a 404.",
    responses=NOT_FOUND,
)
async def get_device(device_id: DeviceId, user: CurrentUser, session: SessionDep) -> DevicePublic:
    device = await service.get_device(session=session, owner_id=user.id, device_id=device_id)
    return DevicePublic.model_validate(device)


@router.delete(
    "/{device_id:uuid}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_model=None,
    response_class=Response,
    summary="Revoke a device",
    description="Revokes the device's key for good: 204. The device then disappears from this "
    "API (later requests for it are a 404; so is a second DELETE) and the ingest app refuses "
    "its key. " + KEY_CACHE_NOTE,
    responses=NOT_FOUND,
)
async def revoke_device(device_id: DeviceId, user: CurrentUser, session: SessionDep) -> None:
    await service.revoke_device(session=session, owner_id=user.id, device_id=device_id)


@router.post(
    "/{device_id:uuid}/rotate-key",
    response_model=DeviceWithKey,
    summary="Rotate a device's key",
    description="Issues a new ingest API key, shown only in this response, and retires the old "
    "one at once. " + KEY_CACHE_NOTE,
    responses=NOT_FOUND,
)
async def rotate_device_key(
    device_id: DeviceId, user: CurrentUser, session: SessionDep
) -> DeviceWithKey:
    issued = await service.rotate_device_key(session=session, owner_id=user.id, device_id=device_id)
    return _with_key(issued)
