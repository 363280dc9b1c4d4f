"""The admin app: creates it with the shared factory and registers its routers."""

from __future__ import annotations

from fastapi import FastAPI

from tripline_admin.queues.router import router as queues_router
from tripline_admin.settings import AdminSettings
from tripline_common.app import create_app
from tripline_common.server import serve

TAGS = [{"name": "queues", "description": "Background job queues."}]


def create_admin_app(settings: AdminSettings | None = None) -> FastAPI:
    """Build the operators' app (`/v1`)."""
    return create_app(
        settings=settings or AdminSettings(),
        title="Tripline admin",
        description="Operators' API and console: users, devices, jobs and the audit log.",
        routers=[queues_router],
        tags_metadata=TAGS,
    )


def run() -> None:
    """Console entry point: `tripline-admin`."""
    settings = AdminSettings()
    serve(create_admin_app(settings), settings)
