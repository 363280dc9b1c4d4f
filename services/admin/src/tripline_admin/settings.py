"""Settings of the admin process: the shared ones, plus the console's session cookie."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from tripline_common.platform import CommonSettings, Environment

_PRODUCTION_LIKE = {Environment.STAGING.value, Environment.PROD.value}


class AdminSettings(CommonSettings):
    """The operators' app: the shared settings with this service's name and port, and the
    browser console's session rules."""

    service_name: str = "admin"
    port: int = 8001

    console_cookie_secure: bool = Field(
        True,
        description="Send the console cookie over HTTPS only (and name it `__Host-…`). Browsers "
        "accept secure cookies from http://localhost and http://127.0.0.1 too; set false only "
        "to reach a dev console over plain HTTP on another host name. Refused in staging/prod.",
    )
    console_session_ttl_seconds: int = Field(
        8 * 3600,
        ge=300,
        le=7 * 86_400,
        description="Absolute lifetime of a console login (s); then the operator signs in again.",
    )
    console_idle_timeout_seconds: int = Field(
        30 * 60,
        ge=60,
        le=86_400,
        description="A console session unused this long ends (s).",
    )
    console_page_size: int = Field(
        25, ge=5, le=100, description="Rows per page of the console's tables."
    )
    overview_cache_seconds: int = Field(
        5,
        ge=0,
        le=300,
        description="The overview (`GET /v1/overview`, the console's first page) is cached in "
        "Redis this long (s), shared by every replica; 0 reads it afresh on each load.",
    )
    queue_metrics_interval_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Seconds between two reads of the job queue from Redis for the queue "
        "gauges (`tripline_admin_queue_*`), which the worker's autoscaler reads: every "
        "replica reads it, whatever the number of scrapes.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://[^/]+",
        description="Base URL of the public API as clients reach it (the worker's setting of the "
        "same name). The admin docs' Authorize button logs in at its `/v1/auth/token`, since "
        "the admin app issues no tokens; the API's CORS_ORIGINS must allow the admin origin.",
    )

    @property
    def auth_token_url(self) -> str:
        """Where the admin docs get an access token: the public API's token endpoint."""
        return f"{self.public_base_url.rstrip('/')}/v1/auth/token"

    @model_validator(mode="after")
    def _no_cors(self) -> Self:
        # The console authenticates with a cookie: any origin allowed credentialed CORS could
        # read its pages (and their CSRF tokens) and post its forms. So the admin app never
        # sends CORS headers, whatever CORS_ORIGINS says (a value shared with the public API).
        self.cors_origins = []
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_docs_in_production_unless_asked(cls, data: Any) -> Any:
        # The admin app's own docs policy: an operator API need not describe itself to whoever
        # reaches it, so in staging and prod /docs and /openapi.json are off unless
        # DOCS_ENABLED says otherwise (the public API keeps the shared default).
        if isinstance(data, dict) and not {"docs_enabled", "DOCS_ENABLED"} & data.keys():
            environment = str(data.get("environment", data.get("ENVIRONMENT", ""))).lower()
            if environment in _PRODUCTION_LIKE:
                data["docs_enabled"] = False
        return data

    @model_validator(mode="after")
    def _secure_cookie_in_production(self) -> Self:
        if self.is_production_like and not self.console_cookie_secure:
            raise ValueError(
                f"refusing to start in {self.environment.value}: "
                "CONSOLE_COOKIE_SECURE must be true (the console cookie is a credential)"
            )
        return self

    # Session hardening (issue 11): aggregated audit entries for refused console sign-ins.
    console_refusal_audit_window_seconds: int = Field(
        3600,
        ge=60,
        le=86_400,
        description="Refused console sign-ins are audited per account (and once for all unknown "
        "emails) per window of this length (s): the 1st, 10th, 100th, ... refusal of each "
        "writes one entry with the count so far.",
    )
