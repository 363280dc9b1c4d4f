"""The admin app's typed state: the shared parts, with `AdminSettings` (the console's fields)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tripline_admin.settings import AdminSettings
from tripline_common.web import ServiceState


class AdminState(ServiceState[AdminSettings]):
    """Created with the app (`create_admin_app`); reached through `AdminState.of(app)`."""


async def get_admin_settings(request: Request) -> AdminSettings:
    """The admin app's settings, typed (read like `tripline_common.web.deps.get_settings`)."""
    state: AdminState = request.app.state.service
    return state.settings


AdminSettingsDep = Annotated[AdminSettings, Depends(get_admin_settings)]
