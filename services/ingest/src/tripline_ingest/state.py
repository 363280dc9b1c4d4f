"""The ingest app's typed state: the shared parts, the key cache, the rate limiters, metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from tripline_common.web import ServiceState
from tripline_ingest.devices import DeviceKeyCache, DeviceRateLimiter, FailedLookupLimiter
from tripline_ingest.settings import IngestSettings

# Why an upload was refused (`tripline_ingest_events_rejected_total{reason}`).
REFUSAL_REASONS = ("invalid", "too_large", "unauthorized", "rate_limited", "unavailable")


class IngestMetrics:
    """Prometheus series of intake, on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter(
            "tripline_ingest_batches",
            "Telemetry batches answered 202, by outcome: stored, or duplicate (a resend).",
            ["outcome"],
            registry=registry,
        )
        self.events_accepted = Counter(
            "tripline_ingest_events_accepted", "Telemetry events stored.", registry=registry
        )
        self.events_rejected = Counter(
            "tripline_ingest_events_rejected",
            "Telemetry events of refused uploads, by reason: invalid, too_large, unauthorized, "
            "rate_limited, unavailable (1 per upload whose body was not read or did not parse).",
            ["reason"],
            registry=registry,
        )
        self.rate_limit_rejections = Counter(
            "tripline_ingest_rate_limit_rejections",
            "Uploads refused with 429 by a rate limit.",
            ["limit"],
            registry=registry,
        )
        self.rate_limit_unchecked = Counter(
            "tripline_ingest_rate_limit_unchecked",
            "Requests let through unchecked because Redis did not answer the rate limiter.",
            registry=registry,
        )

        # Every label value exported from the start (at 0), so rates and alerts see it at once.
        for outcome in ("stored", "duplicate"):
            self.batches.labels(outcome)
        for reason in REFUSAL_REASONS:
            self.events_rejected.labels(reason)
        for limit in ("device", "failed_key_lookups"):
            self.rate_limit_rejections.labels(limit)

    def refused(self, reason: str, events: int, limit: str = "device") -> None:
        """Count an upload refused for `reason` that carried `events` events (by `limit`, when
        a rate limit refused it)."""
        self.events_rejected.labels(reason).inc(events)
        if reason == "rate_limited":
            self.rate_limit_rejections.labels(limit).inc()


class IngestState(ServiceState[IngestSettings]):
    """Created with the app (`create_ingest_app`); reached through `deps.IngestStateDep`."""

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
        self.metrics = IngestMetrics(self.registry)

    async def start_limiters(self) -> None:
        """Lifespan hook: the rate limiters, on the process's Redis."""
        settings, redis = self.settings, self.resources.redis
        self.rate_limiter = DeviceRateLimiter(
            redis,
            limit=settings.device_rate_limit,
            window_seconds=settings.device_rate_window_seconds,
            timeout=settings.rate_limit_timeout_seconds,
        )
        self.failed_lookups = FailedLookupLimiter(
            redis,
            limit=settings.failed_key_lookup_limit,
            window_seconds=settings.failed_key_lookup_window_seconds,
            timeout=settings.rate_limit_timeout_seconds,
        )
