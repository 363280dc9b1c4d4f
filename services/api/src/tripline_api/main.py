"""The public API app: creates it with the shared factory and registers its routers."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_api.auth.router import router as auth_router
from tripline_api.settings import ApiSettings
from tripline_api.trips.deprecation import DEPRECATION_NOTE
from tripline_api.trips.router import router as trips_router
from tripline_api.trips.router_v2 import router as trips_v2_router
from tripline_api.trips.schemas_v2 import BREAKING_CHANGE as TRIPS_V2_CHANGE
from tripline_api.users.router import router as users_router
from tripline_common.app import create_app
from tripline_common.server import serve

TAGS = [
    {"name": "auth", "description": "Log in, refresh, log out, and manage sessions."},
    {"name": "users", "description": "Accounts: registration and profiles."},
    {"name": "trips", "description": "Your planned trips (v1). " + DEPRECATION_NOTE},
    {
        "name": "trips-v2",
        "description": "Your planned trips (v2). Migrating from `/v1/trips`:\n\n" + TRIPS_V2_CHANGE,
    },
]


def create_api_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the public API (`/v1`, and `/v2` for the resources that have a second version)."""
    app = create_app(
        settings=settings or ApiSettings(),
        title="Tripline API",
        description="Public API of Tripline: users, trips, alerts and real-time streams.",
        routers=[auth_router, users_router, trips_router],
        tags_metadata=TAGS,
    )
    app.include_router(trips_v2_router, prefix="/v2")
    return app


def run() -> None:
    """Console entry point: `tripline-api`."""
    settings = ApiSettings()
    serve(create_api_app(settings), settings)
