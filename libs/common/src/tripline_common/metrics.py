"""Prometheus metrics: a registry per app, RED metrics from the instrumentator, at /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_fastapi_instrumentator import Instrumentator

from tripline_common.settings import CommonSettings

EXCLUDED_PATHS = ["/metrics", "/livez", "/readyz", "/startupz"]


def create_registry() -> CollectorRegistry:
    """A registry holding the process, platform and GC collectors.

    One per app instead of the global default, so several apps (or tests) in one process never
    collide on metric names.
    """
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


def instrument_app(app: FastAPI, settings: CommonSettings, registry: CollectorRegistry) -> None:
    """Add request count, latency and size metrics labelled by route template, and /metrics."""
    instrumentator = Instrumentator(
        should_group_status_codes=False,
        should_ignore_untemplated=True,
        should_group_untemplated=True,
        should_respect_env_var=False,
        excluded_handlers=EXCLUDED_PATHS,
        registry=registry,
    )
    instrumentator.instrument(
        app,
        metric_namespace="tripline",
        metric_subsystem=settings.service_name.replace("-", "_"),
        latency_lowr_buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    )
    instrumentator.expose(app, endpoint="/metrics", include_in_schema=False, tags=["health"])
