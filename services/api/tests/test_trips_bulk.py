"""Bulk create: per-item results (207), and one bad item never sinks the others."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from trip_factories import START, missing_id, store_device, trip_body, trip_body_v2

from tripline_api.trips import service
from tripline_api.trips.drafts import TripDraft
from tripline_common.data.models import Trip


@pytest.fixture
async def owner(make_user):
    return await make_user()


@pytest.fixture
async def headers(owner, auth_headers):
    return await auth_headers(owner)


async def stored_names(session_factory, owner) -> list[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(Trip.name).where(Trip.owner_id == owner.id).order_by(Trip.name)
        )
        return list(rows)


async def test_each_item_succeeds_or_fails_on_its_own(
    client, headers, owner, make_user, session_factory
) -> None:
    theirs = await store_device(session_factory, await make_user())
    items = [
        trip_body(name="A"),
        trip_body(name="B", origin_lat=123),
        trip_body(name="C", device_id=str(theirs.id)),
        "not a trip",
        trip_body(name="E"),
    ]

    response = await client.post("/v1/trips/bulk", json={"items": items}, headers=headers)

    assert response.status_code == 207
    body = response.json()
    assert (body["created"], body["failed"]) == (2, 3)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [201, 422, 422, 422, 201]
    assert results[0]["trip"]["name"] == "A" and results[0]["error"] is None
    assert results[1]["trip"] is None
    assert results[1]["error"]["code"] == "validation_error"
    assert results[1]["error"]["details"][0]["loc"] == ["body", "items", 1, "origin_lat"]
    assert results[2]["error"]["code"] == "unknown_device"
    assert results[2]["error"]["details"][0]["loc"] == ["body", "items", 2, "device_id"]
    assert results[3]["error"]["details"][0]["loc"] == ["body", "items", 3]
    for result in results[1:4]:
        assert set(result["error"]) == {"code", "message", "details", "request_id"}
        assert result["error"]["request_id"] == response.headers["X-Request-ID"]
    assert await stored_names(session_factory, owner) == ["A", "E"]


async def test_all_items_failing_is_still_a_207_that_stores_nothing(
    client, headers, owner, session_factory
) -> None:
    items = [trip_body(device_id=missing_id()), trip_body(planned_arrival="2020-01-01T00:00:00Z")]

    response = await client.post("/v1/trips/bulk", json={"items": items}, headers=headers)

    assert response.status_code == 207
    assert response.json()["created"] == 0 and response.json()["failed"] == 2
    assert await stored_names(session_factory, owner) == []


async def test_devices_of_the_owner_are_accepted_in_bulk(
    client, headers, owner, session_factory
) -> None:
    device = await store_device(session_factory, owner)
    items = [trip_body(name=f"T{i}", device_id=str(device.id)) for i in range(3)]

    response = await client.post("/v1/trips/bulk", json={"items": items}, headers=headers)

    assert [r["status"] for r in response.json()["results"]] == [201, 201, 201]


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"items": [trip_body()] * 101},
        {"items": "all of them"},
        {"items": None},
        {},
        {"items": [trip_body()], "atomic": True},
        [trip_body()],
    ],
)
async def test_a_malformed_envelope_is_a_422(client, headers, owner, session_factory, body):
    response = await client.post("/v1/trips/bulk", json=body, headers=headers)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
    assert await stored_names(session_factory, owner) == []


async def test_a_database_refusal_fails_only_its_item(owner, session_factory, redis_url) -> None:
    """Below the API models: an item the database refuses (here an arrival before the start,
    which only a CHECK constraint stops once input validation is bypassed) rolls back its own
    savepoint; the others are created in the same transaction."""

    def draft(name: str, hours: int) -> TripDraft:
        return TripDraft(
            name=name,
            device_id=None,
            origin_lat=0,
            origin_lon=0,
            destination_lat=1,
            destination_lon=1,
            planned_start=START,
            planned_arrival=START + timedelta(hours=hours),
            speed_limit_kmh=None,
            corridor_m=None,
        )

    redis = Redis.from_url(redis_url)
    try:
        async with session_factory() as session:
            outcomes = await service.create_trips(
                session=session,
                redis=redis,
                owner_id=owner.id,
                drafts=[draft("ok 1", 2), draft("refused", -2), draft("ok 2", 3)],
            )
            await session.commit()
    finally:
        await redis.aclose()

    assert [o.error.status_code if o.error else 201 for o in outcomes] == [201, 409, 201]
    assert await stored_names(session_factory, owner) == ["ok 1", "ok 2"]


async def test_v2_bulk_takes_and_returns_the_v2_shape(client, headers) -> None:
    items = [trip_body_v2(), trip_body(name="v1 shape")]

    response = await client.post("/v2/trips/bulk", json={"items": items}, headers=headers)

    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 422]
    assert results[0]["trip"]["origin"] == {"lat": 52.52, "lon": 13.405}
    assert "origin_lat" not in results[0]["trip"]


async def test_bulk_items_are_documented_as_the_single_create(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]

    v1_items = schemas["TripBulkCreate"]["properties"]["items"]
    v2_items = schemas["TripBulkCreateV2"]["properties"]["items"]
    assert v1_items["items"]["anyOf"][0] == {"$ref": "#/components/schemas/TripCreate"}
    assert v2_items["items"]["anyOf"][0] == {"$ref": "#/components/schemas/TripCreateV2"}
    assert v1_items["maxItems"] == 100
    assert "207" in spec["paths"]["/v1/trips/bulk"]["post"]["responses"]
