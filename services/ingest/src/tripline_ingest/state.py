"""What the ingest process keeps between requests: the key cache, the rate limiter, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from tripline_common.app import Resources
from tripline_ingest.devices import DeviceKeyCache, DeviceRateLimiter
from tripline_ingest.settings import IngestSettings


class IngestMetrics:
    """Prometheus series of intake, on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter(
            "tripline_ingest_batches",
            "Telemetry batches answered 202, by outcome: stored, or duplicate (a resend).",
            ["outcome"],
            registry=registry,
        )
        self.events = Counter(
            "tripline_ingest_events_stored", "Telemetry events stored.", registry=registry
        )
        self.rate_limit_unchecked = Counter(
            "tripline_ingest_rate_limit_unchecked",
            "Requests let through unchecked because Redis did not answer the rate limiter.",
            registry=registry,
        )


@dataclass
class IngestState:
    """Created once per process by the lifespan; reached through `deps.IngestStateDep`."""

    settings: IngestSettings
    device_keys: DeviceKeyCache
    rate_limiter: DeviceRateLimiter
    metrics: IngestMetrics

    @classmethod
    def create(cls, settings: IngestSettings, resources: Resources) -> IngestState:
        """Build the state from settings and the process's shared resources."""
        return cls(
            settings=settings,
            device_keys=DeviceKeyCache(
                settings.device_key_cache_ttl_seconds, settings.device_key_cache_size
            ),
            rate_limiter=DeviceRateLimiter(
                resources.redis,
                limit=settings.device_rate_limit,
                window_seconds=settings.device_rate_window_seconds,
                timeout=settings.rate_limit_timeout_seconds,
            ),
            metrics=IngestMetrics(resources.registry),
        )
