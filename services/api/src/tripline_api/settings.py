"""Settings of the public API process."""

from __future__ import annotations

from pydantic import Field

from tripline_common.platform import CommonSettings


class ApiSettings(CommonSettings):
    """The public API: the shared settings with this service's name and port."""

    service_name: str = "api"
    port: int = 8000
    # Every authenticated request reads on the raw pool (the session check): a pool smaller
    # than the requests in flight queues them, and a held connection is only released once
    # its request runs again after every other ready one, so the queue shows in the p99
    # (3x the baseline's at 32 connections with 10, 1.4x with 16; docs/performance.md).
    db_fast_pool_size: int = Field(
        16, ge=1, le=200, description="Connections of the raw asyncpg pool for hot read paths."
    )

    # Real-time alert streams (WS /v1/alerts/ws, SSE /v1/alerts/stream).
    alerts_ws_heartbeat_seconds: float = Field(
        20.0,
        gt=0,
        description="WebSocket: ping interval. Both streams: session re-check interval (logout, "
        "revocation and disabling end a stream within it).",
    )
    alerts_ws_pong_timeout_seconds: float = Field(
        10.0, gt=0, description="WebSocket: a client not answering a ping within this is dropped."
    )
    alerts_sse_heartbeat_seconds: float = Field(
        15.0, gt=0, description="SSE: `: ping` comment when quiet."
    )
    alerts_stream_queue_size: int = Field(
        100, gt=0, description="Events buffered per connection before a slow client is dropped."
    )

    # Uploads (POST /v1/trips/{id}/waypoints/import).
    waypoint_import_max_bytes: int = Field(
        524_288,
        gt=0,
        description="Largest waypoint file (CSV/GPX) accepted; larger gets 413. Keep it under "
        "`max_body_bytes` (the whole request's cap).",
    )

    # Accounts: sign-up, email verification, password reset (docs/operations.md, "Mail").
    signup_rate_limit: int = Field(
        10, ge=1, description="Sign-ups per client address per `signup_rate_window_seconds`."
    )
    signup_rate_window_seconds: int = Field(3600, ge=1, description="Window of that limit (s).")
    signup_global_rate_limit: int = Field(
        100,
        ge=1,
        description="Sign-ups from all clients together per `signup_global_rate_window_seconds` "
        "(a bulk sign-up spread over many addresses).",
    )
    signup_global_rate_window_seconds: int = Field(
        60, ge=1, description="Window of the global sign-up limit (s)."
    )
    password_reset_rate_limit: int = Field(
        5,
        ge=1,
        description="Password-reset requests per client address, and per email address, per "
        "`password_reset_rate_window_seconds`.",
    )
    password_reset_rate_window_seconds: int = Field(
        3600, ge=1, description="Window of the password-reset limit (s)."
    )
    verify_email_token_ttl_seconds: int = Field(
        48 * 3600, ge=300, description="How long an email-verification link works (s)."
    )
    reset_password_token_ttl_seconds: int = Field(
        3600, ge=300, description="How long a password-reset link works (s)."
    )

    # Stream tickets (POST /v1/alerts/stream-tickets): the credential of a stream's URL.
    stream_ticket_ttl_seconds: int = Field(
        30, ge=1, le=300, description="Lifetime of a single-use stream ticket (`?ticket=`)."
    )

    # Telemetry CSV exports (GET /v{1,2}/trips/{id}/telemetry.csv).
    telemetry_export_max_per_user: int = Field(
        2,
        ge=1,
        le=100,
        description="Exports one user may run at once, across replicas; one more gets 429.",
    )

    # Caps on open alert streams (WebSocket and SSE together).
    alerts_stream_max_per_user: int = Field(
        10, ge=1, le=1000, description="Streams one user may hold open at once, across replicas."
    )
    alerts_stream_max_per_process: int = Field(
        1000, ge=1, description="Streams one API process holds open at once, all users together."
    )
