"""Telemetry intake: durable before acknowledged, enqueued after commit, resends counted once."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from arq.jobs import deserialize_job
from sqlalchemy import func, select

from tripline_common.data.models import Device, TelemetryBatch, TelemetryEvent, User
from tripline_common.security import issue_api_key
from tripline_devstack import free_port
from tripline_ingest.main import create_ingest_app
from tripline_ingest.settings import IngestSettings
from tripline_ingest.state import IngestState


@pytest.fixture
def ingest_app(make_settings):
    return create_ingest_app(make_settings(IngestSettings, max_batch_events=5))


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
        redis = IngestState.of(ingest_app).resources.redis
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
        (
            lambda b: b["events"][0].update(recorded_at="0001-01-01T00:00:00+01:00"),
            "validation_error",
        ),
        (lambda b: b["events"][0].update(recorded_at="1999-12-31T23:59:59Z"), "validation_error"),
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
        "year-1-with-offset",
        "before-2000",
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


# --- bodies: gzip, media types, hostile input ------------------------------------------------


def post(client, body: bytes, key: str, **headers):
    return client.post(
        "/v1/telemetry",
        content=body,
        headers={"X-Device-Key": key, "Content-Type": "application/json", **headers},
    )


async def stored_batches(session_factory) -> int:
    async with session_factory() as session:
        return await session.scalar(select(func.count()).select_from(TelemetryBatch))


async def test_a_gzip_body_is_accepted_and_every_field_stored_exactly(
    ingest_app, app_client, device_key, session_factory
) -> None:
    sent = events(2)
    sent[1].update(speed_kmh=None, heading_deg=None, accuracy_m=None)
    body = gzip.compress(orjson.dumps({"events": sent}))
    async with app_client(ingest_app) as client:
        response = await post(client, body, device_key, **{"Content-Encoding": "gzip"})
    assert response.status_code == 202, response.text
    async with session_factory() as session:
        rows = (
            await session.scalars(select(TelemetryEvent).order_by(TelemetryEvent.recorded_at))
        ).all()
    assert [
        (r.recorded_at.isoformat(), r.lat, r.lon, r.speed_kmh, r.heading_deg, r.accuracy_m)
        for r in rows
    ] == [
        (
            datetime.fromisoformat(e["recorded_at"]).isoformat(),
            e["lat"],
            e["lon"],
            e["speed_kmh"],
            e["heading_deg"],
            e["accuracy_m"],
        )
        for e in sent
    ]
    assert all(str(r.batch_id) == response.json()["batch_id"] for r in rows)
    # Each event carries its batch's time of receipt: the partition key, and the worker's bound.
    received = datetime.fromisoformat(response.json()["received_at"])
    assert {r.received_at for r in rows} == {received}


async def test_a_gzip_bomb_is_refused_before_it_expands(
    ingest_app, app_client, device_key, session_factory
) -> None:
    # 64 MB of JSON whitespace inside a 64 KB body: the limit stops the decoding at 4 MB.
    bomb = gzip.compress(b'{"events": [' + b" " * (64 * 1024 * 1024) + b"]}", compresslevel=9)
    assert len(bomb) < 100_000
    async with app_client(ingest_app) as client:
        response = await post(client, bomb, device_key, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await stored_batches(session_factory) == 0


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"\x1f\x8b not really gzip", {"Content-Encoding": "gzip"}, 400, "invalid_gzip"),
        (gzip.compress(b'{"events": []}')[:-6], {"Content-Encoding": "gzip"}, 400, "invalid_gzip"),
        (b"{}", {"Content-Encoding": "br"}, 415, "unsupported_content_encoding"),
        (b"events=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415, None),
        (b'{"events": [', {}, 422, "malformed_json"),
        (b"", {}, 422, "malformed_json"),
        (b"[1, 2]", {}, 422, "validation_error"),
        (b"[" * 100_000 + b"]" * 100_000, {}, 422, "malformed_json"),
        (b'{"events": "' + b"x" * 2_000_000 + b'"}', {}, 413, "payload_too_large"),
    ],
    ids=[
        "not-gzip",
        "truncated-gzip",
        "brotli",
        "form",
        "broken-json",
        "empty",
        "array",
        "deep-nesting",
        "too-large",
    ],
)
async def test_hostile_bodies_get_a_clear_4xx_and_store_nothing(
    ingest_app, app_client, device_key, session_factory, body, headers, status, code
) -> None:
    async with app_client(ingest_app) as client:
        response = await post(client, body, device_key, **headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"code", "message", "details", "request_id"}
    if code:
        assert response.json()["code"] == code
    assert await stored_batches(session_factory) == 0


@pytest.mark.parametrize(
    ("raw_event", "field"),
    [
        (b'"lat": NaN', "lat"),
        (b'"lat": 1e400', "lat"),
        (b'"speed_kmh": -Infinity', "speed_kmh"),
        (b'"heading_deg": 360', "heading_deg"),
        (b'"admin": true', "admin"),
    ],
    ids=["nan", "overflow", "infinity", "heading-360", "extra-field"],
)
async def test_each_bad_event_is_located_in_the_422(
    ingest_app, app_client, device_key, session_factory, raw_event, field
) -> None:
    good = orjson.dumps(events(1)[0])
    bad = good[:-1] + b", " + raw_event + b"}"
    body = b'{"events": [' + good + b", " + bad + b"]}"
    async with app_client(ingest_app) as client:
        response = await post(client, body, device_key)
    assert response.status_code == 422, response.text
    [detail] = response.json()["details"]
    assert detail["loc"] == ["body", "events", 1, field]
    assert await stored_batches(session_factory) == 0


# --- rate limits, key cache, outages ----------------------------------------------------------


async def test_a_device_over_its_rate_limit_gets_a_429_with_retry_after(
    make_settings, app_client, device_key, session_factory
) -> None:
    # An hour's window: the fixed window cannot roll over between the uploads.
    app = create_ingest_app(
        make_settings(IngestSettings, device_rate_limit=2, device_rate_window_seconds=3600)
    )
    async with app_client(app) as client:
        statuses, quotas = [], []
        for _ in range(3):
            response = await client.post(
                "/v1/telemetry", json={"events": events(1)}, headers={"X-Device-Key": device_key}
            )
            statuses.append(response.status_code)
            # A key not yet cached is looked up, under the failed-lookup policy too.
            assert '"device";q=2;w=3600' in response.headers["ratelimit-policy"].split(", ")
            device = [q for q in response.headers["ratelimit"].split(", ") if '"device"' in q]
            quotas.append(device[0].split(";t=")[0])
    assert statuses == [202, 202, 429]
    # The RateLimit field counts down on the accepted uploads and is on the 429 too.
    assert quotas == ['"device";r=1', '"device";r=0', '"device";r=0']
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["retry-after"]) <= 3601
    assert await stored_batches(session_factory) == 2


async def test_with_redis_down_batches_are_still_stored(
    make_settings, app_client, device_key, session_factory
) -> None:
    """The rate limiter fails open and the enqueue failure is logged: the batch is committed,
    so the 202 is truthful, and the worker's sweeper enqueues it once Redis is back."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    app = create_ingest_app(make_settings(IngestSettings, redis_url=dead_redis, redis_timeout=0.5))
    async with app_client(app) as client:
        response = await client.post(
            "/v1/telemetry", json={"events": events(2)}, headers={"X-Device-Key": device_key}
        )
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 202, response.text
    assert await stored_batches(session_factory) == 1
    assert "tripline_ingest_rate_limit_unchecked_total 1.0" in metrics


async def test_a_revoked_key_works_at_most_for_the_cache_ttl(
    make_settings, app_client, device_key, session_factory
) -> None:
    app = create_ingest_app(make_settings(IngestSettings, device_key_cache_ttl_seconds=0.5))
    headers = {"X-Device-Key": device_key}
    async with app_client(app) as client:
        assert (
            await client.post("/v1/telemetry", json={"events": events()}, headers=headers)
        ).status_code == 202
        async with session_factory() as session:
            device = await session.scalar(select(Device))
            device.revoked_at = datetime.now(UTC)
            await session.commit()
        cached = await client.post("/v1/telemetry", json={"events": events()}, headers=headers)
        await asyncio.sleep(0.6)
        expired = await client.post("/v1/telemetry", json={"events": events()}, headers=headers)
    assert cached.status_code == 202
    assert expired.status_code == 401 and expired.json()["code"] == "invalid_device_key"


# --- following a batch --------------------------------------------------------------------------


async def test_a_device_sees_its_own_batches_and_nobody_elses(
    ingest_app, app_client, device_key, session_factory
) -> None:
    other = issue_api_key()
    async with session_factory() as session:
        owner = await session.scalar(select(User))
        session.add(
            Device(
                owner_id=owner.id,
                name="car",
                api_key_prefix=other.prefix,
                api_key_hash=other.key_hash,
            )
        )
        await session.commit()
    async with app_client(ingest_app) as client:
        accepted = await client.post(
            "/v1/telemetry",
            json={"client_batch_id": "b-9", "events": events(3)},
            headers={"X-Device-Key": device_key},
        )
        batch_id = accepted.json()["batch_id"]
        mine = await client.get(f"/v1/batches/{batch_id}", headers={"X-Device-Key": device_key})
        theirs = await client.get(f"/v1/batches/{batch_id}", headers={"X-Device-Key": other.key})
        unknown = await client.get(
            f"/v1/batches/{uuid.uuid4()}", headers={"X-Device-Key": device_key}
        )
        anonymous = await client.get(f"/v1/batches/{batch_id}")
    assert mine.status_code == 200
    assert mine.json() == {
        "batch_id": batch_id,
        "client_batch_id": "b-9",
        "status": "pending",
        "event_count": 3,
        "received_at": accepted.json()["received_at"],
        "processed_at": None,
    }
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["code"] == "not_found"
    assert anonymous.status_code == 401


async def test_the_openapi_document_describes_the_raw_body(ingest_app, app_client) -> None:
    async with app_client(ingest_app) as client:
        document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/telemetry"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    event = schema["properties"]["events"]["items"]
    assert schema["required"] == ["events"]
    assert event["required"] == ["recorded_at", "lat", "lon"]
    assert event["properties"]["lat"] == {
        "description": "Latitude, WGS 84 degrees.",
        "maximum": 90,
        "minimum": -90,
        "title": "Lat",
        "type": "number",
    }
    assert {"202", "400", "401", "413", "415", "422", "429", "503"} <= set(operation["responses"])
    assert "$ref" not in str(schema)
