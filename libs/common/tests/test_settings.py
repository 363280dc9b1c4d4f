"""Settings are validated at start: production refuses unsafe configuration, clearly."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from tripline_common.platform import CommonSettings, Environment
from tripline_common.platform.settings import DEFAULT_SECRET_KEY

GOOD_SECRET = "s" * 48


def make(**values: object) -> CommonSettings:
    return CommonSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_production_refuses_the_default_secret_key(environment: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        make(environment=environment)


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        make(environment="prod", secret_key="short-but-not-default")


def test_production_refuses_a_wildcard_cors_origin() -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS must list explicit origins"):
        make(environment="prod", secret_key=GOOD_SECRET, cors_origins="*")


def test_production_refuses_a_wildcard_trusted_host() -> None:
    with pytest.raises(ValidationError, match="TRUSTED_HOSTS"):
        make(environment="prod", secret_key=GOOD_SECRET, trusted_hosts="*")


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_production_refuses_to_trust_forwarded_for_from_every_peer(environment: str) -> None:
    with pytest.raises(ValidationError, match="FORWARDED_ALLOW_IPS must list the proxies"):
        make(environment=environment, secret_key=GOOD_SECRET, forwarded_allow_ips="*")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ingress-nginx", "'ingress-nginx' is not an IP address or CIDR"),
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/8,*", "'*' cannot be combined with addresses"),
        ("300.1.1.1", "'300.1.1.1' is not an IP address or CIDR"),
    ],
)
def test_a_proxy_list_that_is_not_addresses_or_cidrs_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        make(forwarded_allow_ips=value)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        (" 10.30.255.0/28 , 192.0.2.7 ", "10.30.255.0/28,192.0.2.7"),
        ("fd00:1::/64,::1", "fd00:1::/64,::1"),
        ("", ""),
    ],
)
def test_proxy_addresses_and_cidrs_are_accepted(value: str, normalised: str) -> None:
    settings = make(environment="prod", secret_key=GOOD_SECRET, forwarded_allow_ips=value)
    assert settings.forwarded_allow_ips == normalised


def test_production_refuses_a_missing_database_url() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL must be set"):
        make(environment="prod", secret_key=GOOD_SECRET, database_url=None)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        make(environment="prod", cors_origins="*", database_url=None)
    message = str(caught.value)
    assert "SECRET_KEY" in message and "CORS_ORIGINS" in message and "DATABASE_URL" in message


def test_production_accepts_a_safe_configuration() -> None:
    settings = make(
        environment="prod",
        secret_key=GOOD_SECRET,
        cors_origins="https://app.example.com",
        database_url="postgresql+asyncpg://u:p@db:5432/tripline",
    )
    assert settings.is_production_like
    assert settings.effective_log_format == "json"


def test_dev_allows_the_default_secret_and_logs_to_the_console() -> None:
    settings = make()
    assert settings.environment is Environment.DEV
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY
    assert settings.effective_log_format == "console"


def test_values_come_from_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example.com, https://b.example.com")
    monkeypatch.setenv("DB_POOL_SIZE", "25")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = CommonSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment is Environment.STAGING
    assert settings.cors_origins == ["https://a.example.com", "https://b.example.com"]
    assert settings.db_pool_size == 25
    assert settings.log_level == "DEBUG"


def test_values_come_from_a_dotenv_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("REDIS_URL=redis://cache.internal:6380/2\nTRUSTED_HOSTS=api.example.com\n")
    settings = CommonSettings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.redis_url == "redis://cache.internal:6380/2"
    assert settings.trusted_hosts == ["api.example.com"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("db_pool_size", 0), ("port", 70000), ("environment", "production"), ("log_format", "xml")],
)
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        make(**{field: value})


def test_an_api_idle_timeout_must_outlast_an_access_token() -> None:
    # A client in use moves the idle deadline only when it refreshes, once per access token.
    with pytest.raises(ValidationError, match="API_SESSION_IDLE_TIMEOUT_SECONDS"):
        CommonSettings(access_token_ttl_seconds=3600, api_session_idle_timeout_seconds=3600)

    assert CommonSettings().api_session_idle_timeout_seconds == 7 * 86_400


def test_the_ops_port_must_differ_from_the_app_port() -> None:
    with pytest.raises(ValidationError, match="OPS_PORT must differ from PORT"):
        make(port=9000, ops_port=9000)
