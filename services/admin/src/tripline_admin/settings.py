"""Settings of the admin process."""

from __future__ import annotations

from tripline_common.settings import CommonSettings


class AdminSettings(CommonSettings):
    """The operators' app: the shared settings with this service's name and port."""

    service_name: str = "admin"
    port: int = 8001
