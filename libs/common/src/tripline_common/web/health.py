"""Health endpoints with meaning: /livez (the process), /readyz (its dependencies), /startupz."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from tripline_common.data.db import ping_database
from tripline_common.platform.errors import error_response
from tripline_common.web.state import ServiceState

# Checks abandoned after their timeout, kept referenced until their cancellation completes.
_abandoned: set[asyncio.Future[None]] = set()


def _forget(task: asyncio.Future[None]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # Retrieved, so asyncio does not log "exception was never retrieved".


class HealthStatus(BaseModel):
    """A probe's answer when all is well."""

    status: str = Field(description="`alive`, `ready` or `started`.")
    checks: dict[str, str] = Field(default_factory=dict, description="Each dependency's state.")


async def check_dependencies(
    engine: AsyncEngine,
    redis: ArqRedis,
    timeout: float,
    extra: dict[str, Callable[[], Awaitable[None]]] | None = None,
) -> dict[str, str]:
    """Check Postgres and Redis concurrently, each bounded by `timeout`: name -> `ok` or error."""

    async def redis_ping() -> None:
        await redis.ping()

    checks: dict[str, Callable[[], Awaitable[None]]] = {
        "postgres": lambda: ping_database(engine),
        "redis": redis_ping,
        **(extra or {}),
    }

    async def run(check: Callable[[], Awaitable[None]]) -> str:
        # Not asyncio.wait_for: on timeout it waits for the cancelled check to finish cleaning
        # up, and SQLAlchemy closes a hung connection with its own 2 s timeout. The probe must
        # answer within `timeout`; the abandoned check finishes in the background.
        task = asyncio.ensure_future(check())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            _abandoned.add(task)
            task.add_done_callback(_forget)
            return f"error: no answer within {timeout:g}s"
        exc = task.exception()
        if exc is not None:  # A probe reports any failure, it never raises.
            return f"error: {type(exc).__name__}"
        return "ok"

    results = await asyncio.gather(*(run(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


async def readiness(state: ServiceState[Any]) -> HealthStatus | JSONResponse:
    """The `/readyz` answer: 503 once shutdown begins or while a dependency fails."""
    if state.lifecycle.shutting_down:
        return error_response(503, "shutting_down", "The process is shutting down.", {"checks": {}})
    checks = await check_dependencies(
        state.resources.engine,
        state.resources.redis,
        state.settings.readiness_timeout,
        state.lifecycle.extra_checks,
    )
    if all(result == "ok" for result in checks.values()):
        return HealthStatus(status="ready", checks=checks)
    return error_response(503, "not_ready", "A dependency is unavailable.", {"checks": checks})


def create_health_router() -> APIRouter:
    """`/livez`, `/readyz` and `/startupz`, reading the app's `ServiceState`.

    Left out of the OpenAPI document, like `/metrics`: they answer on `OPS_PORT` only, and the
    document describes the port clients reach (docs/operations.md lists them)."""
    router = APIRouter(tags=["health"], include_in_schema=False)

    @router.get(
        "/livez",
        summary="Liveness: the process is running",
        description="Checks the process only, never a dependency: a database outage must not "
        "make Kubernetes restart every pod.",
        response_model=HealthStatus,
    )
    async def livez() -> HealthStatus:
        return HealthStatus(status="alive")

    @router.get(
        "/readyz",
        summary="Readiness: the process can serve traffic",
        description="Checks Postgres and Redis with short timeouts. Answers 503 while a "
        "dependency is down and as soon as shutdown begins, so traffic drains first.",
        response_model=HealthStatus,
        responses={503: {"description": "Not ready; `details` lists each check."}},
    )
    async def readyz(request: Request) -> HealthStatus | JSONResponse:
        state: ServiceState[Any] = ServiceState.of(request.app)
        answer = await readiness(state)
        state.readiness_metrics.record(ready=isinstance(answer, HealthStatus))
        return answer

    @router.get(
        "/startupz",
        summary="Startup: initialisation has finished",
        description="200 once the lifespan's start-up has completed (pools created, start-up "
        "checks run); used by the startup probe so slow starts are not killed.",
        response_model=HealthStatus,
        responses={503: {"description": "Still starting."}},
    )
    async def startupz(request: Request) -> HealthStatus | JSONResponse:
        if ServiceState.of(request.app).lifecycle.started:
            return HealthStatus(status="started")
        return error_response(503, "starting", "The process is still starting.")

    return router
