"""Console pages for devices: the list, issuing a device, rotating and revoking keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import Response

from tripline_admin.console.paging import Pager, console_page_params, counted
from tripline_admin.console.rendering import redirect, render
from tripline_admin.console.security import ConsoleUser
from tripline_admin.devices import service
from tripline_admin.devices.schemas import DeviceFilters, DevicePage, DeviceState
from tripline_admin.users.service import get_user_by_email
from tripline_common.data import AuditOriginDep, clean_name
from tripline_common.platform import NotFoundError
from tripline_common.web import PageParams, SessionDep

router = APIRouter(prefix="/devices")

DevicePageParams = Annotated[
    PageParams, Depends(console_page_params(service.DEVICE_SORT, DevicePage))
]


def _state(value: str | None) -> DeviceState | None:
    return DeviceState(value) if value in {state.value for state in DeviceState} else None


@router.get("")
async def devices_page(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    page: DevicePageParams,
    q: Annotated[str | None, Query(max_length=100)] = None,
    state: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    filters = DeviceFilters(q=q, state=_state(state))
    result = await service.search_devices(session=session, filters=filters, page=counted(page))
    return render(
        request,
        "devices.html",
        {
            "nav": "devices",
            "devices": result.rows,
            "pager": Pager.of(request, result),
            "q": q or "",
            "state": filters.state.value if filters.state else "",
            "grace_choices": GRACE_CHOICES,
        },
    )


def _key_page(request: Request, device: service.DeviceView, key: str, *, issued: bool) -> Response:
    return render(
        request,
        "device_key.html",
        {"nav": "devices", "device": device, "api_key": key, "issued": issued},
        status_code=201 if issued else 200,
    )


@router.post("")
async def issue_device(
    request: Request,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
    owner_email: Annotated[str, Form(max_length=320)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not owner_email.strip() or not name.strip():
        return redirect(
            request, "/console/devices", ("error", "Give the owner's email and a device name.")
        )
    try:
        # The API's name rule (`DeviceName`), so both doors refuse the same names.
        device_name = clean_name(name)
    except ValueError as exc:
        return redirect(request, "/console/devices", ("error", f"The device name {exc}."))
    try:
        owner = await get_user_by_email(session=session, email=owner_email)
    except NotFoundError as exc:
        return redirect(request, "/console/devices", ("error", exc.message))
    device, key = await service.issue_device(
        session=session, actor=user, owner_id=owner.id, name=device_name, origin=origin
    )
    return _key_page(request, device, key, issued=True)


# What the rotate form offers: how long the old key keeps working (the API's default first).
GRACE_CHOICES = (
    (service.DEFAULT_KEY_GRACE_SECONDS, "old key works 24 h"),
    (3600, "old key works 1 h"),
    (service.MAX_KEY_GRACE_SECONDS, "old key works 7 days"),
    (0, "old key stops now"),
)


def _grace(value: str) -> int | None:
    """The form's grace period in seconds, or None when it is not one of 0..7 days."""
    try:
        seconds = int(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= service.MAX_KEY_GRACE_SECONDS else None


@router.post("/{device_id}/rotate")
async def rotate_key(
    request: Request,
    device_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
    grace_seconds: Annotated[str, Form(max_length=10)] = str(service.DEFAULT_KEY_GRACE_SECONDS),
) -> Response:
    grace = _grace(grace_seconds)
    if grace is None:
        return redirect(
            request,
            "/console/devices",
            ("error", "Choose how long the old key keeps working: 0 s to 7 days."),
        )
    device, key = await service.rotate_key(
        session=session, actor=user, device_id=device_id, origin=origin, grace_seconds=grace
    )
    return _key_page(request, device, key, issued=False)


@router.post("/{device_id}/revoke")
async def revoke_device(
    request: Request,
    device_id: uuid.UUID,
    user: ConsoleUser,
    session: SessionDep,
    origin: AuditOriginDep,
) -> Response:
    device = await service.revoke_device(
        session=session, actor=user, device_id=device_id, origin=origin
    )
    return redirect(
        request,
        "/console/devices",
        ("success", f"The key of “{device.name}” ({device.api_key_prefix}…) is revoked."),
    )
