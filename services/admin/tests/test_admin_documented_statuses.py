"""The admin API answers what its OpenAPI document says: a body over MAX_BODY_BYTES is a
documented 413, and the docs' Authorize button logs in at the public API."""

from __future__ import annotations

from tripline_admin.main import create_admin_app
from tripline_admin.settings import AdminSettings


async def test_a_device_body_over_max_body_bytes_is_a_documented_413(
    make_settings, app_client, operator_headers
) -> None:
    settings = make_settings(AdminSettings, max_body_bytes=1024)
    async with app_client(create_admin_app(settings)) as client:
        answer = await client.post(
            "/v1/devices", json={"name": "x" * 2048}, headers=operator_headers
        )
        document = (await client.get("/openapi.json")).json()
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
    assert "413" in document["paths"]["/v1/devices"]["post"]["responses"]


async def test_the_admin_docs_may_post_to_the_public_apis_token_endpoint(
    make_settings, app_client
) -> None:
    settings = make_settings(AdminSettings, public_base_url="https://api.example.com")
    async with app_client(create_admin_app(settings)) as client:
        document = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    flow = document["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flow["password"]["tokenUrl"] == "https://api.example.com/v1/auth/token"
    assert "connect-src 'self' https://api.example.com;" in docs.headers["content-security-policy"]
