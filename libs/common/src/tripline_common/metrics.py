"""Prometheus metrics: a registry per app, RED metrics from the instrumentator, at /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
)
from prometheus_fastapi_instrumentator import Instrumentator, metrics

from tripline_common.settings import CommonSettings


def create_registry() -> CollectorRegistry:
    """A registry holding the process, platform and GC collectors.

    One per app instead of the global default, so several apps (or tests) in one process never
    collide on metric names.
    """
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


class HttpMetrics:
    """RED metrics of an app: the instrumentator's request counter and latency histogram.

    `tripline_<service>_http_requests_total{handler,method,status}` and
    `tripline_<service>_http_request_duration_seconds{handler,method}`, labelled by route
    template. They are fed by `EdgeMiddleware` (which already knows the matched route, the
    status and the duration) instead of the instrumentator's own middleware, which matched
    every route a second time and built request and response objects on each request.
    """

    def __init__(self, settings: CommonSettings, registry: CollectorRegistry) -> None:
        naming = {
            "metric_namespace": "tripline",
            "metric_subsystem": settings.service_name.replace("-", "_"),
            "registry": registry,
        }
        self._instrumentations = [
            metrics.requests(**naming),
            metrics.latency(
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), **naming
            ),
        ]

    def record(self, handler: str, method: str, status: int, duration: float) -> None:
        """Count one request answered by the route `handler` (a template, never a raw path)."""
        info = metrics.Info(
            request=None,  # type: ignore[arg-type]  # Unused by these two instrumentations.
            response=None,
            method=method,
            modified_handler=handler,
            modified_status=str(status),
            modified_duration=duration,
        )
        for instrumentation in self._instrumentations:
            if instrumentation is not None:
                instrumentation(info)


def expose_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    """Serve the registry at `/metrics` (Prometheus text; probes' host exemption applies)."""
    Instrumentator(registry=registry, should_respect_env_var=False).expose(
        app, endpoint="/metrics", include_in_schema=False, tags=["health"]
    )
