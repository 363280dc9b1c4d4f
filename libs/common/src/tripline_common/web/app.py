"""The app factory every Tripline service calls: lifespan resources, middleware, errors, probes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from tripline_common.data.db import SessionFactory, create_engine, create_session_factory
from tripline_common.data.pg import create_pg_pool
from tripline_common.messaging.queue import JobQueue, create_redis
from tripline_common.platform.errors import ErrorResponse, install_error_handlers
from tripline_common.platform.logging import configure_logging
from tripline_common.platform.metrics import create_registry, instrument_app
from tripline_common.platform.sentry import init_sentry
from tripline_common.platform.settings import CommonSettings
from tripline_common.web.docs import OPENAPI_URL, install_docs
from tripline_common.web.health import Lifecycle, check_dependencies, create_health_router
from tripline_common.web.middleware import install_middleware

log = structlog.get_logger("tripline.app")

# Every route documents the shared error shape for the statuses any request can meet.
COMMON_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The request could not be parsed."},
    422: {"model": ErrorResponse, "description": "Validation failed; `details` lists each field."},
    500: {"model": ErrorResponse, "description": "Unexpected error; quote `request_id`."},
}


@dataclass
class Resources:
    """What the lifespan creates once per process and dependencies hand to handlers."""

    settings: CommonSettings
    engine: AsyncEngine
    session_factory: SessionFactory
    redis: ArqRedis
    queue: JobQueue
    pg: asyncpg.Pool
    registry: CollectorRegistry
    lifecycle: Lifecycle


Hook = Callable[[FastAPI, Resources], Awaitable[None]]


def create_app(
    *,
    settings: CommonSettings,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    api_prefix: str = "/v1",
    tags_metadata: Sequence[Mapping[str, Any]] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    csp_by_prefix: Mapping[str, str] | None = None,
) -> FastAPI:
    """Build a FastAPI app with Tripline's shared behaviour.

    - lifespan: one DB engine and one Redis/ARQ pool per process, start-up checks, and
      `shutting_down` flipped first on shutdown so `/readyz` fails while traffic drains;
    - the middleware stack, the error shape for every error, `/livez`, `/readyz`, `/startupz`,
      Prometheus metrics at `/metrics`, Sentry when `SENTRY_DSN` is set;
    - `routers` mounted under `api_prefix` (URL versioning).
    """
    configure_logging(settings)
    init_sentry(settings)
    registry = create_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        redis = create_redis(settings)
        pg = await create_pg_pool(settings)
        resources = Resources(
            settings=settings,
            engine=engine,
            session_factory=create_session_factory(engine),
            redis=redis,
            queue=JobQueue(redis, settings.arq_queue_name),
            pg=pg,
            registry=registry,
            lifecycle=app.state.lifecycle,
        )
        app.state.resources = resources
        try:
            for hook in on_startup:
                await hook(app, resources)
            await _startup_check(resources)
            resources.lifecycle.started = True
            log.info("started", port=settings.port, ops_port=settings.ops_port)
            yield
        finally:
            resources.lifecycle.shutting_down = True
            for hook in on_shutdown:
                await hook(app, resources)
            await redis.aclose(close_connection_pool=True)
            await pg.close()
            await engine.dispose()
            log.info("stopped")

    docs = settings.docs_enabled
    app = FastAPI(
        title=title,
        description=description,
        version=settings.version,
        lifespan=lifespan,
        openapi_tags=[dict(tag) for tag in tags_metadata],
        docs_url=None,  # Served by install_docs from self-hosted assets instead.
        redoc_url=None,
        openapi_url=OPENAPI_URL if docs else None,
        responses=COMMON_ERROR_RESPONSES,
    )
    # Exists before the lifespan runs, so the server's signal handler can flip it at any time.
    app.state.lifecycle = Lifecycle()
    app.state.settings = settings
    install_error_handlers(app)
    # The API's routes first: the router tries routes in order, and clients call them far
    # more often than the probes, /metrics or the docs (docs/performance.md).
    for router in routers:
        app.include_router(router, prefix=api_prefix)
    app.include_router(create_health_router())
    docs_csp = install_docs(app) if docs else {}
    install_middleware(
        app,
        settings,
        metrics=instrument_app(app, settings, registry),
        csp_by_prefix={**docs_csp, **(csp_by_prefix or {})},
    )
    return app


async def _startup_check(resources: Resources) -> None:
    """Log, at start, whether the dependencies answer. Not fatal: `/readyz` holds traffic back
    until they do, and a crash loop would only add noise to an outage."""
    checks = await check_dependencies(
        resources.engine, resources.redis, resources.settings.readiness_timeout
    )
    if all(result == "ok" for result in checks.values()):
        log.info("startup_check_passed", checks=checks)
    else:
        log.warning("startup_check_failed", checks=checks)
