"""Devices: the ingest key is shown once and stored hashed; revoking and rotating take effect in
the real ingest app; another user's device is a 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tripline_common.data.models import Device
from tripline_common.security import hash_api_key
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings


@pytest.fixture
async def owner(make_user):
    return await make_user()


@pytest.fixture
async def headers(owner, auth_headers):
    return await auth_headers(owner)


@pytest.fixture
def ingest_app(make_settings):
    # No key cache: a revoked key is refused on the very next upload (in production it may
    # be accepted for up to DEVICE_KEY_CACHE_TTL_SECONDS, 10 s by default).
    return create_ingest_app(make_settings(IngestSettings, device_key_cache_ttl_seconds=0))


def telemetry() -> dict:
    now = datetime.now(UTC)
    return {
        "events": [
            {"recorded_at": (now - timedelta(seconds=1)).isoformat(), "lat": 52.5, "lon": 13.4}
        ]
    }


async def register(client, headers, name: str = "Van 7") -> dict:
    response = await client.post("/v1/devices", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_key_is_shown_once_and_stored_hashed(client, headers, session_factory) -> None:
    device = await register(client, headers)

    key = device["api_key"]
    assert key.startswith("tl_") and len(key) > 40
    assert device["api_key_prefix"] == key[: len(device["api_key_prefix"])]
    async with session_factory() as session:
        stored = await session.get(Device, uuid.UUID(device["id"]))
    assert stored is not None
    assert stored.api_key_hash == hash_api_key(key)
    assert key not in (stored.api_key_hash, stored.api_key_prefix)

    fetched = await client.get(f"/v1/devices/{device['id']}", headers=headers)
    listed = await client.get("/v1/devices", headers=headers)
    assert fetched.status_code == 200 and "api_key" not in fetched.json()
    assert fetched.json()["name"] == "Van 7"
    assert [item["id"] for item in listed.json()["items"]] == [device["id"]]
    assert key not in fetched.text + listed.text


async def test_registration_points_to_the_device(client, headers) -> None:
    response = await client.post("/v1/devices", json={"name": "  Van 8 "}, headers=headers)
    assert response.status_code == 201
    assert response.json()["name"] == "Van 8"
    assert response.headers["location"].endswith(f"/v1/devices/{response.json()['id']}")


async def test_another_users_device_is_a_404(client, headers, make_user, auth_headers) -> None:
    device = await register(client, headers)
    stranger = await auth_headers(await make_user())

    assert (await client.get(f"/v1/devices/{device['id']}", headers=stranger)).status_code == 404
    rotate = await client.post(f"/v1/devices/{device['id']}/rotate-key", headers=stranger)
    assert rotate.status_code == 404
    assert (await client.delete(f"/v1/devices/{device['id']}", headers=stranger)).status_code == 404
    assert (await client.get("/v1/devices", headers=stranger)).json()["items"] == []
    assert (await client.get(f"/v1/devices/{device['id']}", headers=headers)).status_code == 200


async def test_a_revoked_device_is_gone_and_its_key_refused_by_ingest(
    client, headers, app_client, ingest_app, session_factory
) -> None:
    device = await register(client, headers)
    key = {"X-Device-Key": device["api_key"]}
    async with app_client(ingest_app) as ingest:
        assert (
            await ingest.post("/v1/telemetry", json=telemetry(), headers=key)
        ).status_code == 202

        revoked = await client.delete(f"/v1/devices/{device['id']}", headers=headers)

        refused = await ingest.post("/v1/telemetry", json=telemetry(), headers=key)
    assert revoked.status_code == 204 and revoked.content == b""
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_device_key"
    assert (await client.get(f"/v1/devices/{device['id']}", headers=headers)).status_code == 404
    assert (await client.delete(f"/v1/devices/{device['id']}", headers=headers)).status_code == 404
    assert (await client.get("/v1/devices", headers=headers)).json()["items"] == []
    async with session_factory() as session:
        stored = await session.get(Device, uuid.UUID(device["id"]))
    assert stored is not None and stored.revoked_at is not None


async def test_rotating_issues_a_new_key_and_retires_the_old_one(
    client, headers, app_client, ingest_app
) -> None:
    device = await register(client, headers)

    rotated = await client.post(f"/v1/devices/{device['id']}/rotate-key", headers=headers)

    assert rotated.status_code == 200
    new_key = rotated.json()["api_key"]
    assert new_key != device["api_key"]
    assert rotated.json()["api_key_prefix"] == new_key[: len(rotated.json()["api_key_prefix"])]
    async with app_client(ingest_app) as ingest:
        old = await ingest.post(
            "/v1/telemetry", json=telemetry(), headers={"X-Device-Key": device["api_key"]}
        )
        new = await ingest.post(
            "/v1/telemetry", json=telemetry(), headers={"X-Device-Key": new_key}
        )
    assert old.status_code == 401
    assert new.status_code == 202


async def test_devices_are_paged_and_sorted(client, headers) -> None:
    names = ["Bravo", "Alpha", "Charlie"]
    for name in names:
        await register(client, headers, name)

    first = await client.get("/v1/devices", params={"limit": 2, "sort": "name"}, headers=headers)
    assert [item["name"] for item in first.json()["items"]] == ["Alpha", "Bravo"]
    assert 'rel="next"' in first.headers["link"]
    rest = await client.get(
        "/v1/devices",
        params={"limit": 2, "sort": "name", "cursor": first.json()["next_cursor"]},
        headers=headers,
    )
    assert [item["name"] for item in rest.json()["items"]] == ["Charlie"]
    bad_sort = await client.get("/v1/devices", params={"sort": "api_key_hash"}, headers=headers)
    assert bad_sort.status_code == 400 and bad_sort.json()["code"] == "invalid_sort"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": 7},
        {"name": True},
        {"name": "Van\x00 7"},
        {"name": "Van 7", "api_key": "tl_mine"},
    ],
)
async def test_bad_registrations_are_a_422_and_store_nothing(
    client, headers, owner, session_factory, body
) -> None:
    response = await client.post("/v1/devices", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    async with session_factory() as session:
        assert (
            await session.scalars(select(Device).where(Device.owner_id == owner.id))
        ).all() == []


async def test_devices_need_a_token(client) -> None:
    response = await client.post("/v1/devices", json={"name": "Van"})
    assert response.status_code == 401
