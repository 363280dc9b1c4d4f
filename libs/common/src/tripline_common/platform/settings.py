"""Process settings: one validated object per process, from environment variables and `.env`."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-dev-only-secret-key-0123456789"  # noqa: S105 - documented dev default


class Environment(StrEnum):
    """Where a process runs; production rules apply to `staging` and `prod`."""

    DEV = "dev"
    TEST = "test"
    STAGING = "staging"
    PROD = "prod"


def _split_csv(value: Any) -> Any:
    """Accept `a,b,c` (the natural env-var form) as well as a JSON list."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            import json

            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


def _proxy_address_list(value: str) -> str:
    """FORWARDED_ALLOW_IPS: `*`, or IP addresses and CIDRs separated by commas (blank: none).

    uvicorn silently treats an entry it cannot parse as a literal that no peer ever matches, so a
    typo would quietly distrust the proxy (or trust nothing the operator meant): refuse it here.
    """
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if entries == ["*"]:
        return "*"
    for entry in entries:
        if entry == "*":
            raise ValueError("'*' cannot be combined with addresses")
        try:
            if "/" in entry:
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError as exc:
            raise ValueError(
                f"{entry!r} is not an IP address or CIDR (e.g. 10.0.0.7 or 10.0.0.0/24): {exc}"
            ) from None
    return ",".join(entries)


def _key_list(value: Any) -> Any:
    """SECRET_KEY_PREVIOUS: one key as it is (keys may contain commas), a JSON list of keys, or
    nothing (unset or blank)."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            import json

            return json.loads(text)
        return [text]
    if isinstance(value, SecretStr):
        return [value]
    return value


class CommonSettings(BaseSettings):
    """Settings every Tripline process shares. Each service subclasses it with its own fields."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    service_name: str = Field("tripline", description="Name stamped on every log line and metric.")
    version: str = Field("0.1.0", description="Release version (the image tag in a cluster).")
    environment: Environment = Field(Environment.DEV, description="dev, test, staging or prod.")

    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")

    secret_key: SecretStr = Field(
        SecretStr(DEFAULT_SECRET_KEY),
        description="Signing key for tokens and cookies; at least 32 characters outside dev/test.",
    )
    secret_key_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys retired from SECRET_KEY, still accepted when verifying (never used to "
        "sign), so rotating the key logs nobody out: one key, or a JSON list of keys. Empty by "
        "default; same rules as SECRET_KEY outside dev/test.",
    )
    database_url: str | None = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/tripline",
        description="SQLAlchemy URL, postgresql+asyncpg://user:password@host:port/db.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL for ARQ and caches.")

    # Database pool (see docs/performance.md for how these were sized).
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(5, ge=0, le=200)
    db_pool_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for a pooled connection."
    )
    db_pool_recycle: int = Field(
        1800, ge=-1, description="Recycle connections older than this (s)."
    )
    db_pool_pre_ping: bool = Field(True, description="Check a connection before handing it out.")
    db_connect_timeout: float = Field(5.0, gt=0, description="Seconds to open a connection.")
    db_statement_timeout_ms: int = Field(15_000, ge=0, description="Server-side statement timeout.")
    db_fast_pool_size: int = Field(
        10, ge=1, le=200, description="Connections of the raw asyncpg pool for hot read paths."
    )
    db_echo: bool = False

    access_token_ttl_seconds: int = Field(
        900, ge=60, le=86_400, description="Lifetime of a JWT access token (short: 15 min)."
    )
    refresh_token_ttl_seconds: int = Field(
        30 * 86_400, ge=3600, description="Lifetime of a session and its refresh token."
    )
    jwt_audience: str = Field("tripline", description="`aud` claim issued and required.")
    jwt_issuer: str = Field("tripline", description="`iss` claim issued and required.")
    login_rate_limit: int = Field(
        10,
        ge=1,
        description="Failed password attempts for one account from one client address per "
        "window; then that client waits (the owner, elsewhere, can still log in).",
    )
    login_rate_window_seconds: int = Field(60, ge=1, description="Window of the login limit (s).")

    redis_timeout: float = Field(5.0, gt=0, description="Socket timeout for Redis calls (s).")
    arq_queue_name: str = Field("tripline:queue", description="The ARQ queue jobs go to.")

    readiness_timeout: float = Field(
        1.0, gt=0, le=10, description="Timeout of each dependency check in /readyz (s)."
    )
    shutdown_drain_seconds: float = Field(
        0.0, ge=0, le=120, description="After SIGTERM, seconds /readyz reports 503 before stopping."
    )
    graceful_shutdown_timeout: int = Field(
        20, ge=1, le=300, description="Seconds uvicorn waits for in-flight requests on shutdown."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="Comma-separated IP addresses and CIDRs of the proxies whose X-Forwarded-For "
        "and X-Forwarded-Proto are trusted; the client is the rightmost X-Forwarded-For address "
        "that is not one of them. Empty: trust no proxy. `*` (trust every peer, so any client "
        "picks its own address) is refused in staging/prod.",
    )

    cors_origins: CsvList = Field(
        default_factory=list, description="Origins allowed by CORS; never `*` in staging/prod."
    )
    trusted_hosts: CsvList = Field(
        default_factory=lambda: ["localhost", "127.0.0.1", "testserver"],
        description="Host headers accepted (names, `*.example.com`); others get a 400.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; larger gets 413."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: str | None = Field(
        None, pattern=r"^(json|console)$", description="json or console; default by environment."
    )
    access_log: bool = Field(True, description="Log one line per request (our middleware).")

    sentry_dsn: SecretStr | None = Field(None, description="Sentry DSN; Sentry is off when unset.")
    sentry_traces_sample_rate: float = Field(0.0, ge=0, le=1)

    docs_enabled: bool = Field(True, description="Serve /docs, /redoc and /openapi.json.")

    # A connection left idle inside an open transaction is ended by Postgres after this.
    db_idle_in_transaction_timeout_ms: int = Field(
        30_000,
        ge=0,
        description="Postgres `idle_in_transaction_session_timeout` of every connection "
        "(engine and raw pool), in ms; 0 disables.",
    )

    # Operations port: probes and /metrics, kept off the port the Service and Ingress reach.
    ops_port: int = Field(
        9000,
        ge=1,
        le=65535,
        description="TCP port serving only /livez, /readyz, /startupz and /metrics (for the "
        "kubelet and Prometheus); on PORT those paths answer 404. Must differ from PORT.",
    )

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        return _proxy_address_list(value)

    @model_validator(mode="before")
    @classmethod
    def _csv_lists(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("log_level", "LOG_LEVEL"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].upper()
            for key in ("cors_origins", "trusted_hosts"):
                for candidate in (key, key.upper()):
                    if candidate in data:
                        data[candidate] = _split_csv(data[candidate])
            for candidate in ("secret_key_previous", "SECRET_KEY_PREVIOUS"):
                if candidate in data:
                    data[candidate] = _key_list(data[candidate])
        return data

    def secret_keys(self) -> tuple[str, ...]:
        """SECRET_KEY, then each of SECRET_KEY_PREVIOUS: sign with the first, accept any."""
        keys = [self.secret_key.get_secret_value()]
        for previous in self.secret_key_previous:
            value = previous.get_secret_value()
            if value not in keys:
                keys.append(value)
        return tuple(keys)

    @property
    def is_production_like(self) -> bool:
        """True for staging and prod, where unsafe defaults are refused."""
        return self.environment in (Environment.STAGING, Environment.PROD)

    @property
    def effective_log_format(self) -> str:
        """JSON wherever logs are shipped; readable console output in dev and test."""
        if self.log_format:
            return self.log_format
        return "console" if self.environment in (Environment.DEV, Environment.TEST) else "json"

    @model_validator(mode="after")
    def _ports_differ(self) -> Self:
        if self.ops_port == self.port:
            raise ValueError(f"OPS_PORT must differ from PORT (both are {self.port})")
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production_config(self) -> Self:
        if not self.is_production_like:
            return self
        problems: list[str] = []
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET_KEY or len(secret) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        for previous in self.secret_key_previous:
            value = previous.get_secret_value()
            if value == DEFAULT_SECRET_KEY or len(value) < 32:
                problems.append(
                    "SECRET_KEY_PREVIOUS must hold only random keys of at least 32 characters"
                )
                break
        if "*" in self.cors_origins:
            problems.append("CORS_ORIGINS must list explicit origins, not '*'")
        if "*" in self.trusted_hosts:
            problems.append("TRUSTED_HOSTS must list explicit host names, not '*'")
        if self.forwarded_allow_ips == "*":
            problems.append(
                "FORWARDED_ALLOW_IPS must list the proxies' addresses, not '*' (with '*' every "
                "client sets its own address through X-Forwarded-For)"
            )
        if not self.database_url:
            problems.append("DATABASE_URL must be set")
        if problems:
            raise ValueError(
                f"refusing to start in {self.environment.value}: " + "; ".join(problems)
            )
        return self

    # Webhook targets: private addresses are a dev/test convenience, refused in staging/prod.
    webhook_allow_private_targets: bool | None = Field(
        None,
        description="Let webhooks be registered for, and delivered to, any URL and address "
        "(localhost, private networks, http). Unset: allowed in dev and test only; true is "
        "refused in staging and prod.",
    )

    @property
    def webhook_private_targets_allowed(self) -> bool:
        """Whether the webhook SSRF guard (`tripline_common.security.egress`) is off."""
        if self.webhook_allow_private_targets is None:
            return not self.is_production_like
        return self.webhook_allow_private_targets

    @model_validator(mode="after")
    def _refuse_private_webhook_targets_in_production(self) -> Self:
        if self.is_production_like and self.webhook_allow_private_targets:
            raise ValueError(
                f"refusing to start in {self.environment.value}: "
                "WEBHOOK_ALLOW_PRIVATE_TARGETS must not be true"
            )
        return self

    # Session hardening (issue 11): per-client and per-account login limits, API idle timeout.
    login_client_rate_limit: int = Field(
        50,
        ge=1,
        description="Password attempts (any email, failed or not) from one client address per "
        "window of the login limit.",
    )
    login_account_rate_limit: int = Field(
        100,
        ge=1,
        description="Failed password attempts for one account from all client addresses per "
        "window of the login limit: slows a distributed guess; keep it well above "
        "LOGIN_RATE_LIMIT.",
    )
    api_session_idle_timeout_seconds: int = Field(
        7 * 86_400,
        ge=600,
        description="An API session not refreshed for this long ends (s); must exceed "
        "ACCESS_TOKEN_TTL_SECONDS, since a client in use refreshes once per access token.",
    )

    @model_validator(mode="after")
    def _idle_timeout_outlasts_an_access_token(self) -> Self:
        # The idle deadline moves only when a token is issued (login, refresh): a shorter
        # timeout would end sessions that are in use.
        if self.api_session_idle_timeout_seconds <= self.access_token_ttl_seconds:
            raise ValueError(
                "API_SESSION_IDLE_TIMEOUT_SECONDS must exceed ACCESS_TOKEN_TTL_SECONDS"
            )
        return self
