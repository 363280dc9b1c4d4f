"""The worker app's typed state: the shared parts, with its settings type and its ARQ runner."""

from __future__ import annotations

from tripline_common.web import ServiceState
from tripline_worker.runner import ArqRunner
from tripline_worker.settings import WorkerServiceSettings


class WorkerState(ServiceState[WorkerServiceSettings]):
    """Created with the app (`create_worker_app`); reached through `WorkerState.of(app)`."""

    def __init__(self, settings: WorkerServiceSettings) -> None:
        super().__init__(settings)
        self.runner: ArqRunner | None = None
        """The ARQ worker's supervisor: from start-up on."""
