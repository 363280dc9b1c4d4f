"""Operators' device endpoints: keys shown once and stored hashed, rotated and revoked keys
refused by the real ingest app, every change audited without the key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tripline_common.data.models import AuditLogEntry, Device
from tripline_common.security import hash_api_key
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings


@pytest.fixture
async def ingest(make_settings, app_client):
    """The real ingest app, in-process, with its key cache off (every request looks up)."""
    app = create_ingest_app(make_settings(IngestSettings, device_key_cache_ttl_seconds=0))
    async with app_client(app) as ingest_client:
        yield ingest_client


async def upload(ingest, key: str) -> int:
    event = {"recorded_at": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}
    response = await ingest.post(
        "/v1/telemetry", json={"events": [event]}, headers={"X-Device-Key": key}
    )
    return response.status_code


async def test_an_issued_key_is_shown_once_stored_hashed_and_works_at_ingest(
    client, ingest, operator_headers, make_user, session_factory
) -> None:
    owner = await make_user()

    response = await client.post(
        "/v1/devices", json={"owner_id": str(owner.id), "name": "Van 12"}, headers=operator_headers
    )

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    key = body["api_key"]
    assert key.startswith("tl_") and body["api_key_prefix"] == key[:11]
    assert body["owner_email"] == owner.email
    async with session_factory() as session:
        device = await session.get(Device, uuid.UUID(body["id"]))
        entries = list(await session.scalars(select(AuditLogEntry)))
    assert device.api_key_hash == hash_api_key(key)
    assert key not in str(device.model_dump())
    assert [e.action for e in entries] == ["device.issue"]
    assert key not in str(entries[0].details)
    assert await upload(ingest, key) == 202
    # Shown once: reading the device never returns the key again.
    again = await client.get(f"/v1/devices/{body['id']}", headers=operator_headers)
    assert "api_key" not in again.json()


async def test_rotating_a_key_refuses_the_old_one_and_revoking_refuses_any(
    client, ingest, operator_headers, make_user
) -> None:
    owner = await make_user()
    issued = (
        await client.post(
            "/v1/devices", json={"owner_id": str(owner.id), "name": "Van"}, headers=operator_headers
        )
    ).json()

    rotated = await client.post(
        f"/v1/devices/{issued['id']}/key", params={"grace_seconds": 0}, headers=operator_headers
    )

    assert rotated.status_code == 200
    new_key = rotated.json()["api_key"]
    assert new_key != issued["api_key"]
    assert await upload(ingest, issued["api_key"]) == 401
    assert await upload(ingest, new_key) == 202

    revoked = await client.post(f"/v1/devices/{issued['id']}/revoke", headers=operator_headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert await upload(ingest, new_key) == 401
    twice = await client.post(f"/v1/devices/{issued['id']}/revoke", headers=operator_headers)
    assert twice.json()["revoked_at"] == revoked.json()["revoked_at"]
    no_rotation = await client.post(f"/v1/devices/{issued['id']}/key", headers=operator_headers)
    assert no_rotation.status_code == 409
    assert no_rotation.json()["code"] == "device_revoked"


async def test_devices_are_listed_with_owner_and_filtered(
    client, operator_headers, make_user
) -> None:
    ada, bob = await make_user(email="ada@example.com"), await make_user(email="bob@example.com")
    for owner, name in ((ada, "Blue van"), (ada, "Red bike"), (bob, "Blue truck")):
        await client.post(
            "/v1/devices", json={"owner_id": str(owner.id), "name": name}, headers=operator_headers
        )
    red = (await client.get("/v1/devices?q=red", headers=operator_headers)).json()["items"][0]
    await client.post(f"/v1/devices/{red['id']}/revoke", headers=operator_headers)

    async def names(**params) -> list[str]:
        response = await client.get("/v1/devices", params=params, headers=operator_headers)
        assert response.status_code == 200, response.text
        return sorted(item["name"] for item in response.json()["items"])

    assert await names(q="blue") == ["Blue truck", "Blue van"]
    assert await names(q="ada@") == ["Blue van", "Red bike"]
    assert await names(owner_id=str(bob.id)) == ["Blue truck"]
    assert await names(state="revoked") == ["Red bike"]
    assert await names(state="active", q="example.com") == ["Blue truck", "Blue van"]


async def test_issuing_for_an_unknown_owner_is_a_404_and_stores_nothing(
    client, operator_headers, session_factory
) -> None:
    response = await client.post(
        "/v1/devices", json={"owner_id": str(uuid.uuid4()), "name": "x"}, headers=operator_headers
    )
    assert response.status_code == 404
    async with session_factory() as session:
        assert list(await session.scalars(select(Device))) == []
        assert list(await session.scalars(select(AuditLogEntry))) == []
