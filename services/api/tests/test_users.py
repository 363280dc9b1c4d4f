"""Sign-up: the API's first resource, end to end through the real app, database and mail."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import User, UserRole


@pytest.fixture
def api_app(api_settings: ApiSettings):
    return create_api_app(api_settings)


NEW_USER = {"email": "Ada@Example.com", "display_name": "Ada", "password": "violet tractor 42"}


def link_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def test_register_creates_a_user_and_hides_the_password(
    api_app, app_client, session_factory, deliver_account_mail, mail_server
) -> None:
    async with app_client(api_app) as client:
        response = await client.post("/v1/users", json=NEW_USER)
        assert response.status_code == 202
        assert response.json()["status"] == "check_email"
        assert "password" not in response.text and "hash" not in response.text
        async with session_factory() as session:
            user = await session.scalar(select(User).where(User.email == "Ada@example.com"))
        # The domain is normalised, the local part kept; the account waits for its link.
        assert user is not None and user.role is UserRole.USER
        assert user.password_hash.startswith("$argon2")
        assert user.email_verified_at is None

        await deliver_account_mail()
        [mail] = mail_server.to("Ada@example.com")
        assert mail.subject == "Confirm your email address for Tripline"
        [link] = mail.links
        assert link.startswith("http://testserver/v1/accounts/verify-email?token=")
        verified = await client.get(urlsplit(link).path, params={"token": link_token(link)})
        assert verified.status_code == 200, verified.text
        login = await client.post(
            "/v1/auth/token",
            data={"username": "ada@example.com", "password": NEW_USER["password"]},
        )
    assert login.status_code == 200, login.text


async def test_register_answers_a_taken_email_in_any_case_like_a_new_one(
    api_app, app_client, make_user, deliver_account_mail, mail_server
) -> None:
    taken = await make_user(email="grace@example.com")
    async with app_client(api_app) as client:
        first = await client.post("/v1/users", json={**NEW_USER, "email": "new@example.com"})
        second = await client.post("/v1/users", json={**NEW_USER, "email": "GRACE@example.COM"})
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    await deliver_account_mail()
    [notice] = mail_server.to(taken.email)
    assert notice.subject == "Someone tried to sign up to Tripline with your address"
    assert notice.tokens  # A password-reset token, in case the owner forgot the password.


@pytest.mark.parametrize(
    "payload",
    [
        {**NEW_USER, "email": "not-an-email"},
        {**NEW_USER, "display_name": "   "},
        {**NEW_USER, "display_name": "nul\u0000byte"},  # The name rule of every name.
        {**NEW_USER, "password": "x" * 129},
        {**NEW_USER, "role": "admin"},  # Extra fields are refused, not ignored.
        {"email": "a@example.com"},
    ],
)
async def test_register_refuses_bad_input_with_a_422(api_app, app_client, payload) -> None:
    async with app_client(api_app) as client:
        response = await client.post("/v1/users", json=payload)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "password",
    [
        "short",
        " " * 12,
        "\t" * 20,
        "password1234",
        "Password1234",
        "qwertyuiop123",
        "ada-secret-pass",
    ],
)
async def test_register_refuses_a_weak_password_with_a_422(api_app, app_client, password) -> None:
    async with app_client(api_app) as client:
        response = await client.post(
            "/v1/users", json={**NEW_USER, "email": "ada-secret@example.com", "password": password}
        )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "weak_password"
    assert body["details"][0]["loc"] == ["body", "password"]
    assert password not in response.text


async def test_openapi_documents_the_error_shape(api_app, app_client) -> None:
    async with app_client(api_app) as client:
        spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/users"]["post"]
    assert operation["summary"] and operation["description"] and operation["tags"] == ["users"]
    for status in ("422", "429"):
        assert operation["responses"][status]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/ErrorResponse")
    assert "202" in operation["responses"] and "201" not in operation["responses"]
    assert "ErrorResponse" in spec["components"]["schemas"]


@pytest.mark.parametrize("domain", ["example.test", "printer.local", "x.invalid", "tor.onion"])
async def test_an_address_on_a_special_use_domain_is_refused_as_the_document_says(
    api_app, app_client, domain
) -> None:
    async with app_client(api_app) as client:
        response = await client.post("/v1/users", json={**NEW_USER, "email": f"ada@{domain}"})
        spec = (await client.get("/openapi.json")).json()

    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == ["body", "email"]
    described = spec["components"]["schemas"]["UserCreate"]["properties"]["email"]["description"]
    assert f"`.{domain.rsplit('.', 1)[1]}`" in described
