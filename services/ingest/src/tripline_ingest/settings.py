"""Settings of the ingest process."""

from __future__ import annotations

from pydantic import Field

from tripline_common.platform import CommonSettings


class IngestSettings(CommonSettings):
    """Telemetry intake: the shared settings plus batch limits, key caching and rate limits."""

    service_name: str = "ingest"
    port: int = 8002
    max_batch_events: int = Field(1000, ge=1, le=10_000, description="Events per batch, at most.")
    max_future_skew_seconds: int = Field(
        300, ge=0, description="How far ahead of the server clock an event time may be."
    )
    max_decompressed_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest body after gzip decoding; more is a 413 (a zip bomb stops here). "
        "MAX_BODY_BYTES bounds the body as sent.",
    )
    device_key_cache_ttl_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="How long a device key lookup is reused. A revoked key keeps working for "
        "at most this long on each ingest replica; 0 looks every request up.",
    )
    device_key_cache_size: int = Field(
        10_000, ge=1, description="Device keys cached per process, at most."
    )
    device_rate_limit: int = Field(
        300, ge=1, description="Uploads per device per window; more get 429 with Retry-After."
    )
    device_rate_window_seconds: int = Field(
        60, ge=1, le=3600, description="Window of the per-device limit (s)."
    )
    rate_limit_timeout_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        description="How long the rate limiter waits for Redis. Past it, or with Redis down, "
        "uploads are let through (fail open) so telemetry keeps flowing into Postgres.",
    )
    last_seen_write_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="devices.last_seen_at is written at most this often per device "
        "(each write locks the device row).",
    )
    # Unknown device keys: a short negative cache and a per-client limit on failed lookups.
    device_key_negative_ttl_seconds: float = Field(
        5.0,
        ge=0,
        le=60,
        description="How long a key the database did not know is answered 401 without a "
        "query. A key tried before it was issued works at most this long after; 0 turns it off.",
    )
    failed_key_lookup_limit: int = Field(
        30,
        ge=1,
        description="Key lookups that find no device, per client address and window; past it, "
        "keys not in the cache get 429 with Retry-After instead of a query.",
    )
    failed_key_lookup_window_seconds: int = Field(
        60, ge=1, le=3600, description="Window of the failed key lookup limit (s)."
    )
