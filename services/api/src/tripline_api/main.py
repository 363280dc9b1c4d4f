"""The public API app: creates it with the shared factory and registers its routers."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_api.accounts.router import router as accounts_router
from tripline_api.alerts.router import router as alerts_router
from tripline_api.alerts_stream.router import docs_router as asyncapi_router
from tripline_api.alerts_stream.router import router as alerts_stream_router
from tripline_api.alerts_stream.service import start_alerts_stream, stop_alerts_stream
from tripline_api.auth.router import router as auth_router
from tripline_api.devices.router import router as devices_router
from tripline_api.jobs.router import router as jobs_router
from tripline_api.settings import ApiSettings
from tripline_api.state import ApiState
from tripline_api.trip_files.router import router as trip_files_router
from tripline_api.trip_files.router import router_v2 as trip_files_v2_router
from tripline_api.trips.deprecation import DEPRECATION_NOTE
from tripline_api.trips.router import router as trips_router
from tripline_api.trips.router import router_v2 as trips_v2_router
from tripline_api.trips.schemas_v2 import BREAKING_CHANGE as TRIPS_V2_CHANGE
from tripline_api.users.router import router as users_router
from tripline_api.webhooks.router import router as webhooks_router
from tripline_common.web import create_app, serve

TAGS = [
    {"name": "auth", "description": "Log in, refresh, log out, and manage sessions."},
    {"name": "users", "description": "Accounts: sign-up and profiles."},
    {
        "name": "accounts",
        "description": "Confirm your email address; reset or change your password.",
    },
    {"name": "trips", "description": "Your planned trips (v1). " + DEPRECATION_NOTE},
    {
        "name": "trips-v2",
        "description": "Your planned trips (v2). Migrating from `/v1/trips`:\n\n" + TRIPS_V2_CHANGE,
    },
    {"name": "alerts", "description": "Rule violations on your trips: list, acknowledge, resolve."},
    {
        "name": "alerts-stream",
        "description": "Your alerts in real time: WebSocket and SSE. Their messages, "
        "heartbeats and close codes: the AsyncAPI document at `/asyncapi.json`.",
    },
    {"name": "devices", "description": "Your telemetry sources and their ingest API keys."},
    {"name": "jobs", "description": "Your background jobs (imports): status, progress, result."},
    {"name": "webhooks", "description": "Your URLs that receive alerts as signed POSTs."},
]


def create_api_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the public API (`/v1`, and `/v2` for the resources that have a second version)."""
    settings = settings or ApiSettings()
    app = create_app(
        state=ApiState(settings),
        title="Tripline API",
        description="Public API of Tripline: users, trips, alerts and real-time streams.",
        # FastAPI tries included routers in order, every route's pattern in turn: the hot trips
        # reads go first (docs/performance.md). The stream's fixed paths (/alerts/ws,
        # /alerts/stream) must come before /alerts/{alert_id}.
        routers=[
            trips_router,
            trip_files_router,
            auth_router,
            users_router,
            accounts_router,
            jobs_router,
            alerts_stream_router,
            alerts_router,
            devices_router,
            webhooks_router,
        ],
        tags_metadata=TAGS,
        on_startup=[start_alerts_stream],
        on_shutdown=[stop_alerts_stream],
    )
    app.include_router(trips_v2_router, prefix="/v2")
    app.include_router(trip_files_v2_router, prefix="/v2")
    if settings.docs_enabled:  # The streams' AsyncAPI document, gated like /openapi.json.
        app.include_router(asyncapi_router)
    return app


def run() -> None:
    """Console entry point: `tripline-api`."""
    settings = ApiSettings()
    serve(create_api_app(settings), settings)
