"""The admin app: creates it with the shared factory, registers the operators' API and the
console."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from tripline_admin.access import AUTH_RESPONSES, OPERATOR_ONLY
from tripline_admin.audit.router import router as audit_router
from tripline_admin.console import CONSOLE_CSP, CONSOLE_PREFIX, install_console
from tripline_admin.devices.router import router as devices_router
from tripline_admin.jobs.router import failures_router
from tripline_admin.jobs.router import router as jobs_router
from tripline_admin.overview.router import router as overview_router
from tripline_admin.queues.router import router as queues_router
from tripline_admin.settings import AdminSettings
from tripline_admin.state import AdminState
from tripline_admin.users.router import router as users_router
from tripline_common.web import create_app, serve

TAGS = [
    {"name": "overview", "description": "Counts, queue health, open alerts, recent failures."},
    {"name": "users", "description": "Accounts: search, roles, disabling, sessions."},
    {"name": "devices", "description": "Telemetry devices and their API keys."},
    {"name": "jobs", "description": "Tracked jobs, recent failures, retry and cancel."},
    {"name": "queues", "description": "Background job queues."},
    {"name": "audit", "description": "The audit log of every operator action (read-only)."},
]

DESCRIPTION = """Operators' API and browser console: users, devices, jobs and the audit log.

Every route needs a bearer token of an **operator** or **admin** (log in at the public API's
`POST /v1/auth/token`); a plain user gets 403, no token 401. Changing roles is for admins.
Every change is recorded in the audit log. The browser console is at `/console/`."""


def create_admin_app(settings: AdminSettings | None = None) -> FastAPI:
    """Build the operators' app: the JSON API under `/v1` and the console under `/console`."""
    settings = settings or AdminSettings()
    # Every resource router hangs off this one, so every `/v1` route needs an operator.
    operators = APIRouter(dependencies=[OPERATOR_ONLY], responses=AUTH_RESPONSES)
    for router in (
        overview_router,
        users_router,
        devices_router,
        jobs_router,
        failures_router,
        queues_router,
        audit_router,
    ):
        operators.include_router(router)
    app = create_app(
        state=AdminState(settings),
        title="Tripline admin",
        description=DESCRIPTION,
        routers=[operators],
        tags_metadata=TAGS,
        csp_by_prefix={CONSOLE_PREFIX: CONSOLE_CSP},
        token_url=settings.auth_token_url,
        on_startup=[AdminState.start_queue_monitor],
        on_shutdown=[AdminState.stop_queue_monitor],
    )
    install_console(app)
    return app


def run() -> None:
    """Console entry point: `tripline-admin`."""
    settings = AdminSettings()
    serve(create_admin_app(settings), settings)
