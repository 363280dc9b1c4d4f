"""`Idempotency-Key` on POST /v1/trips (and /bulk): replay, mismatch, scope, release, expiry."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from trip_factories import missing_id, trip_body

from tripline_common.data.models import AuthSession, Trip
from tripline_common.web.idempotency import IDEMPOTENCY_TTL_SECONDS


@pytest.fixture
async def owner(make_user):
    return await make_user()


@pytest.fixture
async def headers(owner, auth_headers):
    return await auth_headers(owner)


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def count_trips(session_factory, owner) -> int:
    async with session_factory() as session:
        return await session.scalar(select(func.count()).where(Trip.owner_id == owner.id))


def with_key(headers, key: str = "4f1d9a52-3c1b-4f0e-9f8e-7a6b5c4d3e2f") -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_the_same_key_and_body_replays_the_first_response(
    client, headers, owner, session_factory
) -> None:
    first = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    again = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert await count_trips(session_factory, owner) == 1


async def test_the_body_is_compared_as_json_not_as_bytes(client, headers, owner, session_factory):
    body = trip_body()
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)

    await client.post("/v1/trips", json=body, headers=with_key(headers))
    again = await client.post(
        "/v1/trips",
        content=reordered,
        headers={**with_key(headers), "Content-Type": "application/json"},
    )

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await count_trips(session_factory, owner) == 1


async def test_the_same_key_with_another_body_is_a_409(client, headers, owner, session_factory):
    await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    other = await client.post("/v1/trips", json=trip_body(name="Other"), headers=with_key(headers))

    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    assert await count_trips(session_factory, owner) == 1


async def test_keys_are_scoped_per_user(
    client, headers, owner, make_user, auth_headers, session_factory
) -> None:
    other_user = await make_user()
    other_headers = await auth_headers(other_user)

    mine = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    theirs = await client.post("/v1/trips", json=trip_body(), headers=with_key(other_headers))

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["id"] != mine.json()["id"]
    assert await count_trips(session_factory, other_user) == 1


async def test_keys_are_scoped_per_endpoint(client, headers, owner, session_factory) -> None:
    single = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    bulk = await client.post(
        "/v1/trips/bulk", json={"items": [trip_body()]}, headers=with_key(headers)
    )

    assert single.status_code == 201 and bulk.status_code == 207
    assert "Idempotent-Replayed" not in bulk.headers
    assert await count_trips(session_factory, owner) == 2


async def test_without_a_key_every_post_creates_a_trip(client, headers, owner, session_factory):
    for _ in range(2):
        assert (
            await client.post("/v1/trips", json=trip_body(), headers=headers)
        ).status_code == 201

    assert await count_trips(session_factory, owner) == 2


async def test_a_refused_request_releases_its_key(client, headers, owner, session_factory) -> None:
    bad_device = await client.post(
        "/v1/trips", json=trip_body(device_id=missing_id()), headers=with_key(headers)
    )
    invalid = await client.post(
        "/v1/trips", json=trip_body(origin_lat=100), headers=with_key(headers, "other-key")
    )
    fixed = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    fixed_too = await client.post(
        "/v1/trips", json=trip_body(), headers=with_key(headers, "other-key")
    )

    assert bad_device.status_code == 422 and invalid.status_code == 422
    # Nothing happened the first time, so the key is free again, even for another body.
    assert fixed.status_code == fixed_too.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers
    assert await count_trips(session_factory, owner) == 2


async def test_bulk_requests_are_replayed_too(client, headers, owner, session_factory) -> None:
    body = {"items": [trip_body(), trip_body(name="Second")]}

    first = await client.post("/v1/trips/bulk", json=body, headers=with_key(headers))
    again = await client.post("/v1/trips/bulk", json=body, headers=with_key(headers))

    assert first.status_code == again.status_code == 207
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await count_trips(session_factory, owner) == 2


async def test_a_revoked_session_gets_a_401_not_a_replay(
    client, headers, owner, session_factory
) -> None:
    await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    async with session_factory() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == owner.id)
            .values(revoked_at=datetime.now(UTC))
        )
        await session.commit()

    again = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))

    assert again.status_code == 401


async def test_records_expire_after_the_documented_ttl(
    client, headers, owner, session_factory, redis
) -> None:
    await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))
    [key] = [key async for key in redis.scan_iter(match="idempotency:*")]
    assert IDEMPOTENCY_TTL_SECONDS - 60 < await redis.ttl(key) <= IDEMPOTENCY_TTL_SECONDS
    assert f"user:{owner.id}".encode() in key

    await redis.pexpire(key, 1)  # Fast-forward to the end of the TTL.
    await asyncio.sleep(0.05)
    again = await client.post("/v1/trips", json=trip_body(), headers=with_key(headers))

    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert await count_trips(session_factory, owner) == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey", "ключ".encode()])
async def test_a_malformed_key_is_a_422(client, headers, key) -> None:
    response = await client.post(
        "/v1/trips", json=trip_body(), headers={**headers, "Idempotency-Key": key}
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_header_is_documented_on_post(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    parameters = spec["paths"]["/v1/trips"]["post"]["parameters"]

    [header] = [p for p in parameters if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header" and not header["required"]
    assert "replays the first response" in header["description"]
    assert "409" in spec["paths"]["/v1/trips"]["post"]["responses"]
