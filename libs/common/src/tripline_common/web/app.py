"""The app factory every Tripline service calls: lifespan resources, middleware, errors, probes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from tripline_common.data.client_tracing import instrument_clients
from tripline_common.data.db import create_engine, create_session_factory
from tripline_common.data.pg import create_pg_pool
from tripline_common.messaging.queue import JobQueue, create_redis
from tripline_common.platform.logging import configure_logging
from tripline_common.platform.metrics import instrument_app
from tripline_common.platform.sentry import init_sentry
from tripline_common.platform.tracing import init_tracing, switched_tracer_provider
from tripline_common.web.docs import OPENAPI_URL, install_docs
from tripline_common.web.error_handlers import VALIDATION_RAISE_SITE, install_error_handlers
from tripline_common.web.health import check_dependencies, create_health_router
from tripline_common.web.middleware import EDGE_RAISE_SITES, install_middleware
from tripline_common.web.responses import RaiseSite, document_operations, link_operations
from tripline_common.web.state import Resources, ServiceState

log = structlog.get_logger("tripline.app")

APP_RAISE_SITES: tuple[RaiseSite, ...] = (*EDGE_RAISE_SITES, VALIDATION_RAISE_SITE)
"""What the shared middleware and error handlers answer; each operation they apply to documents
it, beside what its dependencies answer (`responses.document_operations`)."""

NO_FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}

StateT = TypeVar("StateT", bound=ServiceState[Any])


def create_app(
    *,
    state: StateT,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    api_prefix: str = "/v1",
    tags_metadata: Sequence[Mapping[str, Any]] = (),
    on_startup: Sequence[Callable[[StateT], Awaitable[None]]] = (),
    on_shutdown: Sequence[Callable[[StateT], Awaitable[None]]] = (),
    csp_by_prefix: Mapping[str, str] | None = None,
    token_url: str | None = None,
) -> FastAPI:
    """Build a FastAPI app with Tripline's shared behaviour around the service's typed `state`.

    - lifespan: one DB engine and one Redis/ARQ pool per process, start-up checks, and
      `shutting_down` flipped first on shutdown so `/readyz` fails while traffic drains;
    - the middleware stack, the error shape for every error, `/livez`, `/readyz`, `/startupz`,
      Prometheus metrics at `/metrics`, Sentry when `SENTRY_DSN` is set, OpenTelemetry tracing
      when an `OTEL_EXPORTER_OTLP_*ENDPOINT` is set (flushed, briefly, when the lifespan ends);
    - `routers` mounted under `api_prefix` (URL versioning);
    - `on_startup` hooks once the resources exist, `on_shutdown` hooks before they close;
    - an OpenAPI document in which every operation lists what the middleware, the error
      handlers and its dependencies can answer, and whose OAuth2 `tokenUrl` is `token_url`
      (default: the app's own `/v1/auth/token`).
    """
    settings = state.settings
    configure_logging(settings)
    init_sentry(settings)
    tracing = init_tracing(
        settings.service_name,
        service_version=settings.version,
        environment=settings.environment.value,
    )
    provider = switched_tracer_provider()
    if provider is not None:  # Tracing is on (set up here, or earlier in this process).
        instrument_clients(provider)  # SQL, Redis, pub/sub and webhook spans.

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        redis = create_redis(settings)
        pg = await create_pg_pool(settings)
        state.resources = Resources(
            engine=engine,
            session_factory=create_session_factory(engine),
            redis=redis,
            queue=JobQueue(redis, settings.arq_queue_name),
            pg=pg,
        )
        try:
            for hook in on_startup:
                await hook(state)
            await _startup_check(state)
            state.lifecycle.started = True
            log.info("started", port=settings.port, ops_port=settings.ops_port)
            yield
        finally:
            state.lifecycle.shutting_down = True
            for hook in on_shutdown:
                await hook(state)
            await redis.aclose(close_connection_pool=True)
            await pg.close()
            await engine.dispose()
            if tracing is not None:
                tracing.shutdown()  # Last: the worker's drained jobs ended their spans above.
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
        # Also given to FastAPI, which would otherwise document a 422 of its own shape.
        responses=VALIDATION_RAISE_SITE.responses,
        # FastAPI's own OpenTelemetry layer stays off: it would wrap the app in a second server
        # span (outside ours) and add spans per dependency and serialization on every request.
        # The edge middleware makes the one server span (`middleware.EdgeMiddleware`).
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.state.service = state
    install_error_handlers(app)
    # The API's routes first: the router tries routes in order, and clients call them far
    # more often than the probes, /metrics or the docs (docs/performance.md).
    for router in routers:
        app.include_router(router, prefix=api_prefix)
    app.include_router(create_health_router())
    docs_csp = install_docs(app, token_url=token_url) if docs else {}
    _finish_document(app, token_url)
    # The pools exist once the lifespan has run; until then the collector reports none.
    metrics = instrument_app(
        app, settings, state.registry, lambda: getattr(state, "resources", None)
    )
    state.readiness_metrics = metrics.readiness
    install_middleware(
        app,
        settings,
        metrics=metrics.http,
        csp_by_prefix={**docs_csp, **(csp_by_prefix or {})},
    )
    return app


def _finish_document(app: FastAPI, token_url: str | None) -> None:
    """Build the OpenAPI document from the routes as they are when it is first asked for
    (services include routers after `create_app`), with every raise site merged in and every
    link naming its target operation."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            document_operations(schema, app.routes, APP_RAISE_SITES)
            link_operations(app, schema)
            if token_url is not None:
                for scheme in schema.get("components", {}).get("securitySchemes", {}).values():
                    flow = scheme.get("flows", {}).get("password")
                    if flow is not None:
                        flow["tokenUrl"] = token_url
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _startup_check(state: ServiceState[Any]) -> None:
    """Log, at start, whether the dependencies answer. Not fatal: `/readyz` holds traffic back
    until they do, and a crash loop would only add noise to an outage."""
    checks = await check_dependencies(
        state.resources.engine, state.resources.redis, state.settings.readiness_timeout
    )
    if all(result == "ok" for result in checks.values()):
        log.info("startup_check_passed", checks=checks)
    else:
        log.warning("startup_check_failed", checks=checks)
