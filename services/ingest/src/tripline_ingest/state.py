"""What the ingest process keeps between requests: the key cache, the rate limiter, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from tripline_common.web import Resources
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


@dataclass
class IngestState:
    """Created once per process by the lifespan; reached through `deps.IngestStateDep`."""

    settings: IngestSettings
    device_keys: DeviceKeyCache
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
