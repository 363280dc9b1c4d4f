"""Registration: the API's first resource, end to end through the real app and database."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.models import User, UserRole


@pytest.fixture
def api_app(make_settings):
    return create_api_app(make_settings(ApiSettings))


NEW_USER = {"email": "Ada@Example.com", "display_name": "Ada", "password": "correct horse 42"}


async def test_register_creates_a_user_and_hides_the_password(
    api_app, app_client, session_factory
) -> None:
    async with app_client(api_app) as client:
        response = await client.post("/v1/users", json=NEW_USER)
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "Ada@example.com"  # The domain is normalised, the local part kept.
    assert body["role"] == "user"
    assert "password" not in response.text and "hash" not in response.text
    async with session_factory() as session:
        user = await session.scalar(select(User).where(User.email == "Ada@example.com"))
    assert user is not None and user.role is UserRole.USER
    assert user.password_hash.startswith("$argon2")


async def test_register_refuses_a_taken_email_in_any_case(api_app, app_client) -> None:
    async with app_client(api_app) as client:
        first = await client.post("/v1/users", json=NEW_USER)
        second = await client.post("/v1/users", json={**NEW_USER, "email": "ada@EXAMPLE.com"})
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["code"] == "email_taken"


@pytest.mark.parametrize(
    "payload",
    [
        {**NEW_USER, "password": "short"},
        {**NEW_USER, "email": "not-an-email"},
        {**NEW_USER, "display_name": "   "},
        {**NEW_USER, "role": "admin"},  # Extra fields are refused, not ignored.
        {"email": "a@example.com"},
    ],
)
async def test_register_refuses_bad_input_with_a_422(api_app, app_client, payload) -> None:
    async with app_client(api_app) as client:
        response = await client.post("/v1/users", json=payload)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_openapi_documents_the_error_shape(api_app, app_client) -> None:
    async with app_client(api_app) as client:
        spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/users"]["post"]
    assert operation["summary"] and operation["description"] and operation["tags"] == ["users"]
    assert operation["responses"]["409"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "ErrorResponse" in spec["components"]["schemas"]
