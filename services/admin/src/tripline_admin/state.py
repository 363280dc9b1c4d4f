"""The admin app's typed state: the shared parts, with `AdminSettings` (the console's fields) and
the queue's gauges and the task that refreshes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tripline_admin.queues.metrics import QueueMetrics, QueueMonitor
from tripline_admin.settings import AdminSettings
from tripline_common.web import ServiceState


class AdminState(ServiceState[AdminSettings]):
    """Created with the app (`create_admin_app`); reached through `AdminState.of(app)`."""

    queue_monitor: QueueMonitor | None = None
    """Refreshes `queue_metrics` while the app runs (`start_queue_monitor`)."""

    def __init__(self, settings: AdminSettings) -> None:
        super().__init__(settings)
        self.queue_metrics = QueueMetrics(self.registry, settings.arq_queue_name)

    async def start_queue_monitor(self) -> None:
        """Startup hook: refresh the queue gauges from Redis every few seconds."""
        self.queue_monitor = QueueMonitor(
            self.queue_metrics,
            self.resources.redis,
            self.settings.arq_queue_name,
            interval=self.settings.queue_metrics_interval_seconds,
        )
        self.queue_monitor.start()

    async def stop_queue_monitor(self) -> None:
        """Shutdown hook: end the refresh task before the Redis pool closes."""
        if self.queue_monitor is not None:
            await self.queue_monitor.stop()


async def get_admin_settings(request: Request) -> AdminSettings:
    """The admin app's settings, typed (read like `tripline_common.web.deps.get_settings`)."""
    state: AdminState = request.app.state.service
    return state.settings


AdminSettingsDep = Annotated[AdminSettings, Depends(get_admin_settings)]
