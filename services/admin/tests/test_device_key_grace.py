"""Zero-downtime device key rotation: the replaced key keeps working at the real ingest app for
a grace period, then is refused; revoking the device refuses both keys at once.

The grace period is ended through the database (its expiry set in the past), not by waiting.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from tripline_api.main import create_api_app
from tripline_api.settings import ApiSettings
from tripline_common.data.models import AuditLogEntry, Device, User
from tripline_common.security import open_session
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings


@pytest.fixture
async def ingest(make_settings, app_client):
    """The real ingest app, in-process, with its key cache off (every request looks up)."""
    app = create_ingest_app(make_settings(IngestSettings, device_key_cache_ttl_seconds=0))
    async with app_client(app) as ingest_client:
        yield ingest_client


@pytest.fixture
def upload(ingest):
    async def send(key: str) -> int:
        event = {"recorded_at": datetime.now(UTC).isoformat(), "lat": 52.5, "lon": 13.4}
        response = await ingest.post(
            "/v1/telemetry", json={"events": [event]}, headers={"X-Device-Key": key}
        )
        return response.status_code

    return send


@pytest.fixture
def issue(client, operator_headers, make_user):
    async def make() -> dict:
        owner = await make_user()
        response = await client.post(
            "/v1/devices", json={"owner_id": str(owner.id), "name": "Van"}, headers=operator_headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    return make


@pytest.fixture
def rotate(client, operator_headers):
    async def send(device_id: str, **params: int):
        return await client.post(
            f"/v1/devices/{device_id}/key", params=params, headers=operator_headers
        )

    return send


async def end_grace(session_factory, device_id: str) -> None:
    """Let the grace period run out: its expiry one second in the past, by the database clock."""
    async with session_factory() as session:
        await session.execute(
            text(
                "UPDATE devices SET previous_key_expires_at = now() - interval '1 second' "
                "WHERE id = :id"
            ),
            {"id": uuid.UUID(device_id)},
        )
        await session.commit()


async def test_the_old_key_works_during_the_grace_period_and_not_after(
    issue, rotate, upload, session_factory
) -> None:
    device = await issue()
    old_key = device["api_key"]

    response = await rotate(device["id"])  # The default grace: 24 hours.

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    new_key = body["api_key"]
    expires = datetime.fromisoformat(body["previous_key_expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert await upload(old_key) == 202
    assert await upload(new_key) == 202
    async with session_factory() as session:
        [entry] = await session.scalars(
            select(AuditLogEntry).where(AuditLogEntry.action == "device.key_rotate")
        )
    assert entry.details["grace_seconds"] == 86_400
    assert old_key not in str(entry.details) and new_key not in str(entry.details)

    await end_grace(session_factory, device["id"])

    assert await upload(old_key) == 401
    assert await upload(new_key) == 202


async def test_revoking_the_device_refuses_both_keys(
    issue, rotate, upload, client, operator_headers
) -> None:
    device = await issue()
    new_key = (await rotate(device["id"], grace_seconds=3600)).json()["api_key"]
    assert await upload(device["api_key"]) == 202

    revoked = await client.post(f"/v1/devices/{device['id']}/revoke", headers=operator_headers)

    assert revoked.status_code == 200
    assert revoked.json()["previous_key_expires_at"] is None
    assert await upload(device["api_key"]) == 401
    assert await upload(new_key) == 401


async def test_no_grace_refuses_the_old_key_at_once(issue, rotate, upload) -> None:
    device = await issue()

    response = await rotate(device["id"], grace_seconds=0)

    assert response.status_code == 200
    assert response.json()["previous_key_expires_at"] is None
    assert await upload(device["api_key"]) == 401
    assert await upload(response.json()["api_key"]) == 202


async def test_at_most_two_keys_work_a_second_rotation_drops_the_first_key(
    issue, rotate, upload
) -> None:
    device = await issue()
    second = (await rotate(device["id"], grace_seconds=3600)).json()["api_key"]
    third = (await rotate(device["id"], grace_seconds=3600)).json()["api_key"]

    assert await upload(device["api_key"]) == 401
    assert await upload(second) == 202
    assert await upload(third) == 202


async def test_the_grace_period_is_bounded(issue, rotate, session_factory) -> None:
    device = await issue()

    for grace in (-1, 7 * 86_400 + 1):
        response = await rotate(device["id"], grace_seconds=grace)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "validation_error"
    async with session_factory() as session:
        stored = await session.get(Device, uuid.UUID(device["id"]))
    assert stored.api_key_prefix == device["api_key_prefix"]  # Nothing rotated.
    assert (await rotate(device["id"], grace_seconds=7 * 86_400)).status_code == 200


async def test_the_owner_rotating_in_the_public_api_drops_an_operators_grace_key(
    issue, rotate, upload, make_settings, app_client, session_factory
) -> None:
    device = await issue()
    await rotate(device["id"], grace_seconds=3600)
    async with session_factory() as session:
        owner = await session.get(Device, uuid.UUID(device["id"]))
        settings = make_settings(ApiSettings)
        user = await session.get(User, owner.owner_id)
        issued = await open_session(session=session, settings=settings, user=user)
        await session.commit()

    async with app_client(create_api_app(settings)) as api:
        response = await api.post(
            f"/v1/devices/{device['id']}/rotate-key",
            headers={"Authorization": f"Bearer {issued.access_token}"},
        )
    assert response.status_code == 200, response.text

    assert await upload(device["api_key"]) == 401  # The operator's grace key.
    assert await upload(response.json()["api_key"]) == 202
