"""The ingest app's typed state: the shared parts, the key cache, the last-seen throttle, the
rate limiters, metrics."""

from __future__ import annotations

from tripline_common.web import ServiceState
from tripline_ingest.metrics import IngestMetrics
from tripline_ingest.settings import IngestSettings
from tripline_ingest.telemetry.devices import DeviceKeyCache, LastSeenThrottle
from tripline_ingest.telemetry.limits import DeviceRateLimiter, FailedLookupLimiter


class IngestState(ServiceState[IngestSettings]):
    """Created with the app (`create_ingest_app`); reached through `IngestStateDep`."""

    rate_limiter: DeviceRateLimiter
    failed_lookups: FailedLookupLimiter
    """Both from start-up on (`start_limiters`): they count in the lifespan's Redis."""

    def __init__(self, settings: IngestSettings) -> None:
        super().__init__(settings)
        self.device_keys = DeviceKeyCache(
            settings.device_key_cache_ttl_seconds,
            settings.device_key_cache_size,
            negative_ttl=settings.device_key_negative_ttl_seconds,
        )
        self.last_seen = LastSeenThrottle(
            settings.last_seen_write_interval_seconds, settings.device_key_cache_size
        )
        self.metrics = IngestMetrics(self.registry)

    async def start_limiters(self) -> None:
        """Lifespan hook: the rate limiters, on the process's Redis."""
        settings, redis = self.settings, self.resources.redis
        timeout = settings.rate_limit_timeout_seconds
        self.rate_limiter = DeviceRateLimiter(redis, settings, timeout=timeout)
        self.failed_lookups = FailedLookupLimiter(redis, settings, timeout=timeout)
