"""The worker process: the ARQ worker plus a small HTTP app for /livez, /readyz and /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_common.web import Resources, create_app, serve
from tripline_worker.metrics import JobMetrics
from tripline_worker.runner import ArqRunner
from tripline_worker.settings import WorkerServiceSettings


def create_worker_app(settings: WorkerServiceSettings | None = None) -> FastAPI:
    """The worker's HTTP app; its lifespan starts and drains the ARQ worker."""
    settings = settings or WorkerServiceSettings()

    async def start_worker(app: FastAPI, resources: Resources) -> None:
        runner = ArqRunner(resources, JobMetrics(resources.registry))
        app.state.runner = runner
        resources.lifecycle.extra_checks["worker"] = runner.check
        runner.start()

    async def stop_worker(app: FastAPI, _: Resources) -> None:
        runner: ArqRunner | None = getattr(app.state, "runner", None)
        if runner is not None:
            await runner.stop()

    return create_app(
        settings=settings,
        title="Tripline worker",
        description="ARQ worker: telemetry batches, webhooks and cron. HTTP serves probes only.",
        routers=[],
        on_startup=[start_worker],
        on_shutdown=[stop_worker],
    )


def run() -> None:
    """Console entry point: `tripline-worker` (its probe is `tripline-worker-check`)."""
    settings = WorkerServiceSettings()
    serve(create_worker_app(settings), settings)
