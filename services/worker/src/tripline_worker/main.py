"""The worker process: the ARQ worker plus a small HTTP app for /livez, /readyz and /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_common.web import create_app, serve
from tripline_worker.metrics import JobMetrics
from tripline_worker.runner import ArqRunner
from tripline_worker.settings import WorkerServiceSettings
from tripline_worker.state import WorkerState


def create_worker_app(settings: WorkerServiceSettings | None = None) -> FastAPI:
    """The worker's HTTP app; its lifespan starts and drains the ARQ worker."""

    async def start_worker(state: WorkerState) -> None:
        runner = ArqRunner(state.resources, state.settings, JobMetrics(state.registry))
        state.runner = runner
        state.lifecycle.extra_checks["worker"] = runner.check
        state.lifecycle.on_shutdown_requested.append(runner.stop_taking_jobs)
        runner.start()

    async def stop_worker(state: WorkerState) -> None:
        if state.runner is not None:
            await state.runner.stop()

    return create_app(
        state=WorkerState(settings or WorkerServiceSettings()),
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
