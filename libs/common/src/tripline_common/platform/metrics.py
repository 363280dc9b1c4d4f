"""Prometheus metrics every app shares: a registry per app, RED metrics, build info, readiness
and connection pools, served at /metrics (OpenMetrics with exemplars, or the classic format).

Names follow `tripline_<component>_<subject>_<unit>` (docs/operations.md, "Metrics"): the
component is the process (`api`, `ingest`, `admin`, `worker`), labels are bounded enums or route
templates, never IDs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from tripline_common.platform.settings import CommonSettings
from tripline_common.platform.tracing import DROP_REASONS, dropped_spans, trace_exemplar

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
POOL_STATES = ("in_use", "idle", "max")


def metric_prefix(settings: CommonSettings) -> str:
    """`tripline_<component>`: the component is the service name (`api`, `worker`, ...)."""
    return f"tripline_{settings.service_name.replace('-', '_')}"


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
    """RED metrics of an app: `<prefix>_http_requests_total{handler,method,status}` and
    `<prefix>_http_request_duration_seconds{handler,method}` (no request or response size
    histograms: they cost on every request and nobody graphs them).

    Fed by `EdgeMiddleware`, which already knows the matched route, the status and the
    duration (docs/performance.md). A request inside a sampled server span leaves its trace ID
    as the exemplar of the latency bucket it falls in (`tracing.trace_exemplar`).
    """

    def __init__(self, settings: CommonSettings, registry: CollectorRegistry) -> None:
        prefix = metric_prefix(settings)
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests by route template, method and status.",
            ["handler", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{prefix}_http_request_duration_seconds",
            "HTTP request duration by route template and method.",
            ["handler", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def record(self, handler: str, method: str, status: int, duration: float) -> None:
        """Count one request answered by the route `handler` (a template, or `none` for paths
        no route matched: scanners and typos, never the raw path)."""
        self.requests.labels(handler, method, str(status)).inc()
        self.latency.labels(handler, method).observe(duration, trace_exemplar())


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The registry's samples and their content type, in the format the `Accept` header asks
    for: OpenMetrics, exemplars included, for `application/openmetrics-text` (Prometheus
    asks for it first by default); the classic text format, which has no exemplars, otherwise.
    prometheus_client's own negotiation (`choose_encoder`)."""
    encode, content_type = choose_encoder(accept)
    return encode(registry), content_type


class ProcessPools(Protocol):
    """The pools `PoolCollector` reads: the app's lifespan resources."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def pg(self) -> Any: ...

    @property
    def redis(self) -> Any: ...


@dataclass(frozen=True)
class AppMetrics:
    """What `instrument_app` registered that the app feeds: RED per request, each /readyz."""

    http: HttpMetrics
    readiness: ReadinessMetrics


def instrument_app(
    app: FastAPI,
    settings: CommonSettings,
    registry: CollectorRegistry,
    pools: Callable[[], ProcessPools | None],
) -> AppMetrics:
    """Register the shared series on `registry`, serve them at `/metrics` (`exposition`), and
    return the recorders the app feeds (`EdgeMiddleware` the RED one, `/readyz` the readiness
    one).

    - requests and their latency by route template (`HttpMetrics`);
    - `build_info`, the readiness gauge and its flips (`ReadinessMetrics`);
    - the DB and Redis pools, read at scrape time (`PoolCollector`; `pools` gives None until
      the lifespan has created them);
    - the spans tracing had to drop (`TracingCollector`), 0 while tracing is off.
    """
    recorder = HttpMetrics(settings, registry)

    @app.get("/metrics", include_in_schema=False, tags=["health"])
    async def metrics(request: Request) -> Response:
        # Tens of milliseconds of CPU for a busy app's series: off the event loop.
        body, content_type = await asyncio.to_thread(
            exposition, registry, request.headers.get("accept", "")
        )
        return Response(body, headers={"Content-Type": content_type})

    prefix = metric_prefix(settings)
    Gauge(
        f"{prefix}_build_info",
        "Always 1; the labels say which build runs where.",
        ["version", "environment"],
        registry=registry,
    ).labels(settings.version, settings.environment.value).set(1)
    readiness = ReadinessMetrics(prefix, registry)
    registry.register(PoolCollector(settings, prefix, pools))
    registry.register(TracingCollector(prefix))
    return AppMetrics(http=recorder, readiness=readiness)


class ReadinessMetrics:
    """`<prefix>_ready` (1/0, the last /readyz answer) and `<prefix>_readiness_changes_total`."""

    def __init__(self, prefix: str, registry: CollectorRegistry) -> None:
        self.ready = Gauge(
            f"{prefix}_ready",
            "1 if the last /readyz evaluation was ready, else 0.",
            registry=registry,
        )
        self.changes = Counter(
            f"{prefix}_readiness_changes",
            "Times the /readyz answer flipped between ready and not ready.",
            registry=registry,
        )
        self._last: bool | None = None

    def record(self, ready: bool) -> None:
        """Note one /readyz answer; a flip from the previous answer is counted."""
        if self._last is not None and ready != self._last:
            self.changes.inc()
        self._last = ready
        self.ready.set(1 if ready else 0)


class PoolCollector(Collector):
    """Connections of the process's pools, read when Prometheus scrapes (no per-request cost).

    `<prefix>_db_pool_connections{pool,state}`: `orm` is SQLAlchemy's pool, `raw` the asyncpg
    fast pool (when the process has one); `<prefix>_redis_pool_connections{state}`.
    States: `in_use`, `idle`, `max`.
    """

    def __init__(
        self, settings: CommonSettings, prefix: str, pools: Callable[[], ProcessPools | None]
    ) -> None:
        self.settings = settings
        self.prefix = prefix
        self.pools = pools

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                f"{self.prefix}_db_pool_connections",
                "Database connections by pool (orm, raw) and state (in_use, idle, max).",
                labels=["pool", "state"],
            ),
            GaugeMetricFamily(
                f"{self.prefix}_redis_pool_connections",
                "Redis connections by state (in_use, idle, max).",
                labels=["state"],
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: the resources do not exist yet when the collector is registered.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db, redis = self._families()
        resources = self.pools()
        if resources is not None:
            for pool, counts in (
                ("orm", self._orm(resources.engine)),
                ("raw", self._raw(resources.pg)),
            ):
                if counts is not None:
                    for state, value in zip(POOL_STATES, counts, strict=True):
                        db.add_metric([pool, state], value)
            counts = self._redis(resources.redis)
            if counts is not None:
                for state, value in zip(POOL_STATES, counts, strict=True):
                    redis.add_metric([state], value)
        yield db
        yield redis

    def _orm(self, engine: Any) -> tuple[int, int, int] | None:
        pool = engine.pool
        if not hasattr(pool, "checkedout"):
            return None  # A pool without counters (e.g. NullPool).
        limit = self.settings.db_pool_size + self.settings.db_max_overflow
        return pool.checkedout(), pool.checkedin(), limit

    @staticmethod
    def _raw(pg: Any) -> tuple[int, int, int] | None:
        if not isinstance(pg, asyncpg.Pool):
            return None  # No fast pool in this process (or a single connection, in tests).
        idle = pg.get_idle_size()
        return pg.get_size() - idle, idle, pg.get_max_size()

    @staticmethod
    def _redis(client: Any) -> tuple[int, int, int] | None:
        pool = getattr(client, "connection_pool", None)
        # redis-py keeps these counts in attributes without a public accessor.
        in_use = getattr(pool, "_in_use_connections", None)
        idle = getattr(pool, "_available_connections", None)
        if in_use is None or idle is None:
            return None
        return len(in_use), len(idle), pool.max_connections  # type: ignore[union-attr]


class TracingCollector(Collector):
    """`<prefix>_trace_spans_dropped_total{reason}`: spans the exporter never sent, because the
    batch queue was full (`queue_full`) or the collector refused or did not answer
    (`export_failed`). Read from `tracing.dropped_spans` at scrape time; both reasons from 0."""

    def __init__(self, prefix: str) -> None:
        self.name = f"{prefix}_trace_spans_dropped"

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(
            self.name,
            "Spans dropped before export, by reason (queue_full, export_failed).",
            labels=["reason"],
        )

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = self._family()
        counts = dropped_spans()
        for reason in DROP_REASONS:
            family.add_metric([reason], counts[reason])
        yield family
