"""Every status a route can answer is in its OpenAPI operation: what the shared middleware and
error handlers answer, and what each dependency in its graph answers (`RaiseSite`s)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from scripts.openapi_snapshot import APPS, SNAPSHOT_SETTINGS
from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings
from tripline_common.web import DATABASE_RAISE_SITE
from tripline_common.web.app import APP_RAISE_SITES
from tripline_common.web.responses import RaiseSite, dependency_sites, operations

ERROR_SHAPE = {"$ref": "#/components/schemas/ErrorResponse"}


def _app_and_document(name: str) -> tuple[Any, dict[str, Any]]:
    app = APPS[name]
    built = app.create(app.settings(_env_file=None, **SNAPSHOT_SETTINGS))
    return built, built.openapi()


def _assert_documented(site: RaiseSite, answers: dict[str, Any], success: str, where: str) -> None:
    for status in site.responses:
        assert str(status) in answers, f"{where} does not document {status}"
        schema = answers[str(status)]["content"]["application/json"]["schema"]
        assert schema == ERROR_SHAPE, f"{where} {status} is not in the error shape"
        for header in site.responses[status].get("headers", {}):
            assert header in answers[str(status)].get("headers", {}), f"{where} {status} {header}"
    for header in site.success_headers:
        assert header in answers[success].get("headers", {}), f"{where} {success} lacks {header}"


@pytest.mark.parametrize("name", sorted(APPS))
def test_every_operation_documents_what_its_middleware_handlers_and_dependencies_answer(
    name: str,
) -> None:
    app, document = _app_and_document(name)
    checked = 0
    for operation in operations(app.routes):
        answers = document["paths"][operation.path][operation.method.lower()]["responses"]
        where = f"{operation.method} {operation.path}"
        sites = [site for site in APP_RAISE_SITES if site.applies(operation)]
        for site in [*sites, *dependency_sites(operation)]:
            _assert_documented(site, answers, str(operation.status_code), where)
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("name", sorted(APPS))
def test_every_error_answer_of_every_operation_is_in_the_shared_error_shape(name: str) -> None:
    _, document = _app_and_document(name)
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == ERROR_SHAPE, f"{method.upper()} {path} {status}"


@pytest.mark.parametrize(
    ("name", "path", "method"),
    [
        ("api", "/v1/users", "post"),
        ("api", "/v2/trips", "post"),
        ("admin", "/v1/devices", "post"),
        ("ingest", "/v1/telemetry", "post"),
    ],
)
def test_operations_with_a_body_document_413_and_reads_do_not(
    name: str, path: str, method: str
) -> None:
    _, document = _app_and_document(name)
    assert "413" in document["paths"][path][method]["responses"]
    reads = [ops["get"] for ops in document["paths"].values() if "get" in ops]
    assert reads and all("413" not in read["responses"] for read in reads)


@pytest.mark.parametrize(
    ("name", "path", "method", "policies"),
    [
        ("api", "/v1/auth/token", "post", ["login-client", "login-account-client"]),
        ("api", "/v1/users", "post", ["signup", "signup-all"]),
        ("api", "/v1/accounts/password-reset/request", "post", ["password-reset"]),
        ("api", "/v1/accounts/password", "post", ["password-change"]),
        ("ingest", "/v1/telemetry", "post", ["device", "failed-key-lookups"]),
    ],
)
def test_rate_limited_operations_document_the_ratelimit_headers_on_success_and_429(
    name: str, path: str, method: str, policies: list[str]
) -> None:
    _, document = _app_and_document(name)
    answers = document["paths"][path][method]["responses"]
    success = next(status for status in answers if status.startswith("2"))
    assert {"RateLimit-Policy", "RateLimit"} <= answers[success]["headers"].keys()
    assert {"Retry-After", "RateLimit-Policy", "RateLimit"} <= answers["429"]["headers"].keys()
    for policy in policies:
        assert f"`{policy}`" in answers["429"]["description"]


def test_the_admin_docs_log_in_at_the_public_apis_token_endpoint() -> None:
    settings = AdminSettings(
        _env_file=None, **SNAPSHOT_SETTINGS, public_base_url="https://api.example.com/"
    )
    document = create_admin_app(settings).openapi()
    flow = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flow["password"]["tokenUrl"] == "https://api.example.com/v1/auth/token"
    assert settings.auth_token_url == "https://api.example.com/v1/auth/token"


@pytest.mark.parametrize("name", sorted(APPS))
def test_a_route_that_takes_the_pool_without_a_dependency_documents_the_database_503(
    name: str,
) -> None:
    app, document = _app_and_document(name)
    hot_reads = 0
    for operation in operations(app.routes):
        if "pg_pool(" not in inspect.getsource(operation.dependant.call):
            continue
        hot_reads += 1
        answers = document["paths"][operation.path][operation.method.lower()]["responses"]
        _assert_documented(DATABASE_RAISE_SITE, answers, str(operation.status_code), operation.path)
    assert hot_reads > 0 or name != "api"  # The API's trip read is one.
