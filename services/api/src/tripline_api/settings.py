"""Settings of the public API process."""

from __future__ import annotations

from tripline_common.settings import CommonSettings


class ApiSettings(CommonSettings):
    """The public API: the shared settings with this service's name and port."""

    service_name: str = "api"
    port: int = 8000
