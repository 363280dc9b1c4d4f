"""Prometheus series of ingest (those every app has are in `tripline_common.platform.metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

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
