"""The API's own Prometheus series: open real-time connections and login rate-limit refusals."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tripline_api.alerts_stream.manager import TRANSPORTS, ConnectionManager


class ApiMetrics:
    """Created with the app's state; reached as `ApiState.metrics`."""

    def __init__(
        self, registry: CollectorRegistry, manager: Callable[[], ConnectionManager | None]
    ) -> None:
        self.rate_limit_rejections = Counter(
            "tripline_api_rate_limit_rejections",
            "Requests refused with 429 by a rate limit (login, signup, password_reset, "
            "password_change).",
            ["limit"],
            registry=registry,
        )
        for limit in ("login", "signup", "password_reset", "password_change"):
            self.rate_limit_rejections.labels(limit)  # Exported from the start, at 0.
        registry.register(RealtimeConnections(manager))


class RealtimeConnections(Collector):
    """`tripline_api_realtime_connections{transport}`, counted from the connection manager when
    Prometheus scrapes: nothing to keep in step as sockets open and close."""

    def __init__(self, manager: Callable[[], ConnectionManager | None]) -> None:
        self.manager = manager

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
        manager = self.manager()
        counts = manager.connections_by_transport() if manager else dict.fromkeys(TRANSPORTS, 0)
        for transport, count in counts.items():
            family.add_metric([transport], count)
        yield family
