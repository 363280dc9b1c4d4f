"""The public API app: creates it with the shared factory and registers its routers."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_api.auth.router import router as auth_router
from tripline_api.settings import ApiSettings
from tripline_api.users.router import router as users_router
from tripline_common.app import create_app
from tripline_common.server import serve

TAGS = [
    {"name": "auth", "description": "Log in, refresh, log out, and manage sessions."},
    {"name": "users", "description": "Accounts: registration and profiles."},
]


def create_api_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the public API (`/v1`)."""
    return create_app(
        settings=settings or ApiSettings(),
        title="Tripline API",
        description="Public API of Tripline: users, trips, alerts and real-time streams.",
        routers=[auth_router, users_router],
        tags_metadata=TAGS,
    )


def run() -> None:
    """Console entry point: `tripline-api`."""
    settings = ApiSettings()
    serve(create_api_app(settings), settings)
