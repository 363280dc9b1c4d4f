"""The API's typed state: the shared parts with `ApiSettings`, its metrics and its alert streams."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tripline_api.alerts_stream.manager import ConnectionManager
from tripline_api.metrics import ApiMetrics
from tripline_api.settings import ApiSettings
from tripline_common.web import ServiceState


class ApiState(ServiceState[ApiSettings]):
    """Created with the app (`create_api_app`); reached through `ApiState.of(app)`."""

    def __init__(self, settings: ApiSettings) -> None:
        super().__init__(settings)
        self.alerts_manager: ConnectionManager | None = None
        """The alert streams' connections on this process: from start-up on."""
        self.metrics = ApiMetrics(self.registry, lambda: self.alerts_manager)


async def get_api_settings(request: Request) -> ApiSettings:
    """The API's settings, typed (read like `tripline_common.web.deps.get_settings`)."""
    state: ApiState = request.app.state.service
    return state.settings


ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]
