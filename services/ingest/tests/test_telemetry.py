"""Telemetry intake: durable before acknowledged, enqueued after commit, resends counted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from arq.jobs import deserialize_job
from sqlalchemy import func, select

from tripline_common.apikeys import issue_api_key
from tripline_common.models import Device, TelemetryBatch, TelemetryEvent, User
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings


@pytest.fixture
def ingest_app(make_settings):
    return create_ingest_app(make_settings(IngestSettings, max_batch_events=5))


@pytest.fixture
async def device_key(session_factory) -> str:
    key = issue_api_key()
    async with session_factory() as session:
        user = User(email="owner@example.com", display_name="Owner", password_hash="x")
        session.add(user)
        await session.flush()
        session.add(
            Device(
                owner_id=user.id, name="van", api_key_prefix=key.prefix, api_key_hash=key.key_hash
            )
        )
        await session.commit()
    return key.key


def events(n: int = 2) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "recorded_at": (now - timedelta(seconds=n - i)).isoformat(),
            "lat": 52.5 + i / 1000,
            "lon": 13.4,
            "speed_kmh": 50.0,
            "heading_deg": 90.0,
            "accuracy_m": 4.0,
        }
        for i in range(n)
    ]


async def test_accepted_batch_is_stored_then_enqueued(
    ingest_app, app_client, device_key, session_factory
) -> None:
    async with app_client(ingest_app) as client:
        response = await client.post(
            "/v1/telemetry",
            json={"events": events(3)},
            headers={"X-Device-Key": device_key, "X-Request-ID": "ingest-rid-1"},
        )
        assert response.status_code == 202, response.text
        body = response.json()
        redis = ingest_app.state.resources.redis
        job = deserialize_job(await redis.get(f"arq:job:process_batch:{body['batch_id']}"))
    assert body["status"] == "pending" and body["event_count"] == 3 and not body["duplicate"]
    assert job.function == "process_batch"
    assert job.args == (body["batch_id"],)
    assert job.kwargs == {"request_id": "ingest-rid-1"}
    async with session_factory() as session:
        batch = await session.get(TelemetryBatch, body["batch_id"])
        stored = await session.scalar(select(func.count()).select_from(TelemetryEvent))
    assert batch is not None and batch.request_id == "ingest-rid-1"
    assert stored == 3


async def test_a_resent_batch_is_stored_once(
    ingest_app, app_client, device_key, session_factory
) -> None:
    payload = {"client_batch_id": "b-1", "events": events(2)}
    async with app_client(ingest_app) as client:
        first = await client.post(
            "/v1/telemetry", json=payload, headers={"X-Device-Key": device_key}
        )
        again = await client.post(
            "/v1/telemetry", json=payload, headers={"X-Device-Key": device_key}
        )
    assert first.status_code == again.status_code == 202
    assert again.json()["duplicate"] is True
    assert again.json()["batch_id"] == first.json()["batch_id"]
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(TelemetryBatch)) == 1
        assert await session.scalar(select(func.count()).select_from(TelemetryEvent)) == 2


@pytest.mark.parametrize("key", [None, "tl_not-a-real-key"])
async def test_unknown_or_missing_device_key_is_a_401(ingest_app, app_client, key) -> None:
    headers = {"X-Device-Key": key} if key else {}
    async with app_client(ingest_app) as client:
        response = await client.post("/v1/telemetry", json={"events": events()}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b["events"][0].update(lat=91), "validation_error"),
        (lambda b: b["events"][0].update(speed_kmh="fast"), "validation_error"),
        (lambda b: b["events"][0].update(accuracy_m=False), "validation_error"),
        (lambda b: b["events"][0].update(recorded_at=1764000000), "validation_error"),
        (lambda b: b["events"][0].update(recorded_at="2026-01-01T00:00:00"), "validation_error"),
        (lambda b: b.update(events=[]), "validation_error"),
        (lambda b: b.update(events=events(6)), "batch_too_large"),
        (
            lambda b: b["events"][1].update(
                recorded_at=(datetime.now(UTC) + timedelta(days=2)).isoformat()
            ),
            "invalid_events",
        ),
    ],
    ids=[
        "lat",
        "type",
        "bool-as-number",
        "epoch-number-as-time",
        "naive-time",
        "empty",
        "too-many",
        "future",
    ],
)
async def test_bad_batches_are_a_422_and_store_nothing(
    ingest_app, app_client, device_key, session_factory, mutate, code
) -> None:
    batch = {"events": events(2)}
    mutate(batch)
    async with app_client(ingest_app) as client:
        response = await client.post(
            "/v1/telemetry", json=batch, headers={"X-Device-Key": device_key}
        )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["details"]
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(TelemetryBatch)) == 0


async def test_a_revoked_device_key_is_refused(
    ingest_app, app_client, device_key, session_factory
) -> None:
    async with session_factory() as session:
        device = await session.scalar(select(Device))
        device.revoked_at = datetime.now(UTC)
        await session.commit()
    async with app_client(ingest_app) as client:
        response = await client.post(
            "/v1/telemetry", json={"events": events()}, headers={"X-Device-Key": device_key}
        )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_device_key"
