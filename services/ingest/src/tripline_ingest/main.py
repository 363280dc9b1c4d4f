"""The ingest app: creates it with the shared factory and registers its routers."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_common.web import create_app, serve
from tripline_ingest.settings import IngestSettings
from tripline_ingest.state import IngestState
from tripline_ingest.telemetry.refusals import RefusalCounter
from tripline_ingest.telemetry.router import router as telemetry_router

TAGS = [{"name": "telemetry", "description": "Device telemetry intake."}]


def create_ingest_app(settings: IngestSettings | None = None) -> FastAPI:
    """Build the ingest service (`/v1`)."""
    app = create_app(
        state=IngestState(settings or IngestSettings()),
        title="Tripline ingest",
        description="High-rate telemetry intake for devices authenticated by API keys.",
        routers=[telemetry_router],
        tags_metadata=TAGS,
        on_startup=[IngestState.start_limiters],
    )
    app.add_middleware(RefusalCounter)
    return app


def run() -> None:
    """Console entry point: `tripline-ingest`."""
    settings = IngestSettings()
    serve(create_ingest_app(settings), settings)
