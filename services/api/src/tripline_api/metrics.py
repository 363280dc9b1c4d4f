"""The API's own Prometheus series: open real-time connections and login rate-limit refusals."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tripline_api.alerts_stream.manager import TRANSPORTS, ConnectionManager
from tripline_common.web import Resources


class ApiMetrics:
    """Created once per process by the lifespan; reached as `app.state.api_metrics`."""

    def __init__(self, app: FastAPI, registry: CollectorRegistry) -> None:
        self.rate_limit_rejections = Counter(
            "tripline_api_rate_limit_rejections",
            "Requests refused with 429 by a rate limit (login, signup, password_reset, "
            "password_change).",
            ["limit"],
            registry=registry,
        )
        for limit in ("login", "signup", "password_reset", "password_change"):
            self.rate_limit_rejections.labels(limit)  # Exported from the start, at 0.
        registry.register(RealtimeConnections(app))


class RealtimeConnections(Collector):
    """`tripline_api_realtime_connections{transport}`, counted from the connection manager when
    Prometheus scrapes: nothing to keep in step as sockets open and close."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tripline_api_realtime_connections",
            "Open real-time alert streams on this process, by transport (websocket, sse).",
            labels=["transport"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        manager: ConnectionManager | None = getattr(self.app.state, "alerts_manager", None)
        counts = manager.connections_by_transport() if manager else dict.fromkeys(TRANSPORTS, 0)
        for transport, count in counts.items():
            family.add_metric([transport], count)
        yield family


async def create_api_metrics(app: FastAPI, resources: Resources) -> None:
    """Lifespan hook: register the API's series on the app's registry."""
    app.state.api_metrics = ApiMetrics(app, resources.registry)
