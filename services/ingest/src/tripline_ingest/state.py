"""What the ingest process keeps between requests: the key cache, the last-seen throttle, the
rate limiters, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from tripline_common.app import Resources
from tripline_ingest.metrics import IngestMetrics
from tripline_ingest.settings import IngestSettings
from tripline_ingest.telemetry.devices import DeviceKeyCache, LastSeenThrottle
from tripline_ingest.telemetry.limits import DeviceRateLimiter, FailedLookupLimiter


@dataclass
class IngestState:
    """Created once per process by the lifespan; reached through `telemetry.deps.IngestStateDep`."""

    settings: IngestSettings
    device_keys: DeviceKeyCache
    last_seen: LastSeenThrottle
    rate_limiter: DeviceRateLimiter
    metrics: IngestMetrics
    failed_lookups: FailedLookupLimiter

    @classmethod
    def create(cls, settings: IngestSettings, resources: Resources) -> IngestState:
        """Build the state from settings and the process's shared resources."""
        return cls(
            settings=settings,
            device_keys=DeviceKeyCache(
                settings.device_key_cache_ttl_seconds,
                settings.device_key_cache_size,
                negative_ttl=settings.device_key_negative_ttl_seconds,
            ),
            last_seen=LastSeenThrottle(
                settings.last_seen_write_interval_seconds, settings.device_key_cache_size
            ),
            rate_limiter=DeviceRateLimiter(
                resources.redis,
                limit=settings.device_rate_limit,
                window_seconds=settings.device_rate_window_seconds,
                timeout=settings.rate_limit_timeout_seconds,
            ),
            metrics=IngestMetrics(resources.registry),
            failed_lookups=FailedLookupLimiter(
                resources.redis,
                limit=settings.failed_key_lookup_limit,
                window_seconds=settings.failed_key_lookup_window_seconds,
                timeout=settings.rate_limit_timeout_seconds,
            ),
        )
