"""Webhooks: the secret is shown once, URLs are validated, the SSRF guard holds in staging and
production, and another user's endpoint is a 404."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import WebhookEndpoint
from tripline_common.security import open_session


@pytest.fixture
def staging_settings(make_settings) -> ApiSettings:
    return make_settings(
        ApiSettings, environment="staging", secret_key="s" * 40, trusted_hosts="testserver"
    )


@pytest.fixture
async def staging(staging_settings, app_client, owner, session_factory):
    """A client of the API running with staging settings, and headers for `owner` there."""
    async with session_factory() as session:
        issued = await open_session(session=session, settings=staging_settings, user=owner)
        await session.commit()
    async with app_client(create_api_app(staging_settings)) as client:
        yield client, {"Authorization": f"Bearer {issued.access_token}"}


async def stored_endpoints(session_factory, owner) -> list[WebhookEndpoint]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.owner_id == owner.id)
        )
        return list(rows)


async def test_the_secret_is_shown_once_and_signs_deliveries(
    client, headers, owner, session_factory
) -> None:
    response = await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/in"}, headers=headers
    )

    assert response.status_code == 201
    body = response.json()
    secret = body["secret"]
    assert len(secret) >= 43 and body["url"] == "https://hooks.example.com/in"
    assert response.headers["location"].endswith(f"/v1/webhooks/{body['id']}")
    (stored,) = await stored_endpoints(session_factory, owner)
    assert stored.secret == secret and stored.is_active
    fetched = await client.get(f"/v1/webhooks/{body['id']}", headers=headers)
    listed = await client.get("/v1/webhooks", headers=headers)
    assert fetched.status_code == 200 and "secret" not in fetched.json()
    assert [item["id"] for item in listed.json()["items"]] == [body["id"]]
    assert secret not in fetched.text + listed.text


async def test_another_users_endpoint_is_a_404(
    client, headers, make_user, auth_headers, owner, session_factory
) -> None:
    created = await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/in"}, headers=headers
    )
    webhook_id = created.json()["id"]
    stranger = await auth_headers(await make_user())

    assert (await client.get(f"/v1/webhooks/{webhook_id}", headers=stranger)).status_code == 404
    deleted = await client.delete(f"/v1/webhooks/{webhook_id}", headers=stranger)
    assert deleted.status_code == 404 and deleted.json()["code"] == "webhook_not_found"
    assert (await client.get("/v1/webhooks", headers=stranger)).json()["items"] == []
    assert len(await stored_endpoints(session_factory, owner)) == 1


async def test_deleting_answers_204_then_404(client, headers, owner, session_factory) -> None:
    created = await client.post(
        "/v1/webhooks", json={"url": "http://localhost:9000/hook"}, headers=headers
    )
    webhook_id = created.json()["id"]

    first = await client.delete(f"/v1/webhooks/{webhook_id}", headers=headers)
    second = await client.delete(f"/v1/webhooks/{webhook_id}", headers=headers)

    assert first.status_code == 204 and first.content == b""
    assert second.status_code == 404
    assert (await client.get(f"/v1/webhooks/{webhook_id}", headers=headers)).status_code == 404
    assert await stored_endpoints(session_factory, owner) == []


async def test_endpoints_are_paged(client, headers) -> None:
    for i in range(3):
        await client.post(
            "/v1/webhooks", json={"url": f"https://hooks.example.com/{i}"}, headers=headers
        )

    first = await client.get("/v1/webhooks", params={"limit": 2, "sort": "url"}, headers=headers)
    assert [item["url"][-1] for item in first.json()["items"]] == ["0", "1"]
    rest = await client.get(
        "/v1/webhooks",
        params={"limit": 2, "sort": "url", "cursor": first.json()["next_cursor"]},
        headers=headers,
    )
    assert [item["url"][-1] for item in rest.json()["items"]] == ["2"]
    bad = await client.get("/v1/webhooks", params={"sort": "secret"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_sort"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/in",
        "javascript:alert(1)",
        "hooks.example.com/in",
        "https://",
        "https://user:pass@hooks.example.com/in",
        "https://hooks.example.com:99999/in",
        "https://hooks.example.com/in#frag",
        "https://hooks.example.com/ in",
        "https://hööks.example.com/in",
        "https://hooks.example.com/" + "a" * 2048,
        "",
    ],
)
async def test_malformed_urls_are_a_422_and_store_nothing(
    client, headers, owner, session_factory, url
) -> None:
    response = await client.post("/v1/webhooks", json={"url": url}, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert response.json()["details"][0]["loc"][-1] == "url"
    assert await stored_endpoints(session_factory, owner) == []


@pytest.mark.parametrize(
    "body", [{}, {"url": 7}, {"url": None}, {"url": "https://a.example", "secret": "mine"}]
)
async def test_bad_bodies_are_a_422(client, headers, body) -> None:
    response = await client.post("/v1/webhooks", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",
        "https://localhost/in",
        "https://LOCALHOST./in",
        "https://api.localhost/in",
        "https://127.0.0.1/in",
        "https://10.1.2.3/in",
        "https://172.16.0.1/in",
        "https://192.168.1.1/in",
        "https://169.254.169.254/latest/meta-data",
        "https://100.64.0.1/in",
        "https://0.0.0.0/in",
        "https://[::1]/in",
        "https://[fe80::1]/in",
        "https://[fd00::1]/in",
        "https://[::ffff:10.0.0.1]/in",
        "https://2130706433/in",
        "https://0x7f.0.0.1/in",
        "https://127.1/in",
        "https://0x7f.1/in",
        "https://0177.0.0.1/in",
        "https://017700000001/in",
        "http://2130706433/in",
        "https://224.0.0.1/in",
        "https://198.18.0.1/in",
        "https://192.0.0.170/in",
        "https://[64:ff9b::7f00:1]/in",
        "https://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "https://[64:ff9b:1::a00:1]/in",
        "https://[2002:7f00:1::]/in",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/in",
        "https://[::127.0.0.1]/in",
        "https://[::ffff:7f00:1]/in",
        "https://[ff02::1]/in",
    ],
)
async def test_in_staging_unsafe_urls_are_refused(staging, owner, session_factory, url) -> None:
    client, headers = staging
    response = await client.post("/v1/webhooks", json={"url": url}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "unsafe_webhook_url"
    assert response.json()["details"][0]["loc"] == ["body", "url"]
    assert await stored_endpoints(session_factory, owner) == []


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "https://93.184.215.14:8443/in",
        "https://[2606:4700::1]/",
        "https://[64:ff9b::5db8:d70e]/in",  # NAT64 of a public address (DNS64 clusters)
    ],
)
async def test_in_staging_public_https_urls_are_accepted(staging, url) -> None:
    client, headers = staging
    response = await client.post("/v1/webhooks", json={"url": url}, headers=headers)
    assert response.status_code == 201, response.text


async def test_in_development_a_local_http_receiver_is_accepted(client, headers) -> None:
    # Development and tests deliver to receivers on 127.0.0.1; only prod-like settings refuse.
    response = await client.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9000/hook"}, headers=headers
    )
    assert response.status_code == 201


async def test_the_published_url_pattern_refuses_only_urls_the_server_refuses(client) -> None:
    from tripline_api.webhooks.schemas import WebhookCreate

    spec = (await client.get("/openapi.json")).json()
    pattern = spec["components"]["schemas"]["WebhookCreate"]["properties"]["url"]["pattern"]
    accepted = ["https://hooks.example.com/in", "HTTP://127.0.0.1:8080/x?y=1", "http://h/#"]
    refused = ["ftp://h/in", "javascript:alert(1)", "h/in", "https://h/ in", "https://hööks/in"]

    for url in accepted:
        assert re.search(pattern, url), url
        WebhookCreate(url=url)
    for url in refused:
        assert not re.search(pattern, url), url
        with pytest.raises(ValueError):
            WebhookCreate(url=url)
