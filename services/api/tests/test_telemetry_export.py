"""`GET /v1/trips/{id}/telemetry.csv`: the trip's fixes as a streamed CSV download."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from trip_factories import missing_id, store_device, trip_body

from tests.support.query_plans import plan
from tripline_api.slots import take_slot
from tripline_api.trip_files import service
from tripline_common.data.models import TelemetryBatch, TelemetryEvent

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def trip_id(client, headers) -> str:
    response = await client.post("/v1/trips", json=trip_body(), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def store_fixes(session_factory, owner, trip_id, count: int, *, reverse=False) -> None:
    """`count` fixes of the trip, one a second from T0 (stored newest first with `reverse`),
    plus one fix of no trip."""
    device = await store_device(session_factory, owner)
    async with session_factory() as session:
        batch = TelemetryBatch(device_id=device.id, event_count=count + 1)
        session.add(batch)
        await session.flush()
        order = range(count - 1, -1, -1) if reverse else range(count)
        rows = [
            {
                "batch_id": batch.id,
                "device_id": device.id,
                "trip_id": uuid.UUID(trip_id),
                "recorded_at": T0 + timedelta(seconds=i),
                "lat": 52.0 + i / 100_000,
                "lon": 13.0,
                "speed_kmh": 50.0 if i % 2 == 0 else None,
            }
            for i in order
        ]
        rows.append(
            {"batch_id": batch.id, "device_id": device.id, "recorded_at": T0, "lat": 1, "lon": 1}
        )
        await session.execute(insert(TelemetryEvent), rows)
        await session.commit()


async def test_the_csv_lists_the_trips_fixes_in_time_order(
    client, headers, owner, trip_id, session_factory
) -> None:
    await store_fixes(session_factory, owner, trip_id, 3, reverse=True)
    response = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;") and f"trip-{trip_id}-telemetry.csv" in disposition
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == list(service.EXPORT_COLUMNS)
    assert [r[0] for r in rows[1:]] == [(T0 + timedelta(seconds=i)).isoformat() for i in range(3)]
    assert rows[1][1:4] == ["52.0", "13.0", "50.0"]
    assert rows[2][3] == ""  # No speed: an empty cell.


async def test_a_trip_without_fixes_is_just_the_header(client, headers, trip_id) -> None:
    response = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    assert response.status_code == 200
    assert response.text == ",".join(service.EXPORT_COLUMNS) + "\n"


async def test_only_the_owner_can_export(client, trip_id, make_user, auth_headers) -> None:
    stranger = await auth_headers(await make_user())
    for target in (trip_id, missing_id()):
        response = await client.get(f"/v1/trips/{target}/telemetry.csv", headers=stranger)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "trip_not_found"
    assert (await client.get(f"/v1/trips/{trip_id}/telemetry.csv")).status_code == 401


async def test_many_rows_are_streamed_in_chunks(
    client, headers, owner, trip_id, session_factory, monkeypatch
) -> None:
    count = 2500
    await store_fixes(session_factory, owner, trip_id, count)
    chunk_rows: list[int] = []
    original = service.telemetry_csv

    def counting(**kwargs):
        async def gen():
            async for chunk in original(**{**kwargs, "chunk_rows": 500}):
                chunk_rows.append(chunk.count(b"\n"))
                yield chunk

        return gen()

    monkeypatch.setattr(service, "telemetry_csv", counting)
    async with client.stream(
        "GET", f"/v1/trips/{trip_id}/telemetry.csv", headers=headers
    ) as response:
        assert response.status_code == 200
        body = b"".join([part async for part in response.aiter_bytes()])
    lines = body.decode().splitlines()
    assert len(lines) == count + 1
    assert lines[-1].startswith((T0 + timedelta(seconds=count - 1)).isoformat())
    # The header, then the rows a page (500 rows) at a time: never all at once.
    assert chunk_rows == [1, 500, 500, 500, 500, 500]


async def test_the_export_is_documented_as_csv(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    for version in ("v1", "v2"):
        operation = spec["paths"][f"/{version}/trips/{{trip_id}}/telemetry.csv"]["get"]
        assert "text/csv" in operation["responses"]["200"]["content"]
        assert "404" in operation["responses"]
        assert operation.get("deprecated", False) is (version == "v1")


async def test_v2_serves_the_same_export_without_deprecation_headers(
    client, headers, owner, trip_id, session_factory
) -> None:
    await store_fixes(session_factory, owner, trip_id, 2)
    v1 = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    v2 = await client.get(f"/v2/trips/{trip_id}/telemetry.csv", headers=headers)
    assert v1.status_code == v2.status_code == 200
    assert v1.text == v2.text
    assert "Deprecation" in v1.headers and "Deprecation" not in v2.headers


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_exports_beyond_the_per_user_bound_get_429_in_the_shared_shape(
    client, headers, owner, trip_id, redis
) -> None:
    # Two exports of this user running (on any replica): their slots are taken.
    key = service.export_slots_key(owner.id)
    assert await take_slot(redis, key, limit=2)
    assert await take_slot(redis, key, limit=2)
    response = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_exports"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert int(response.headers["retry-after"]) > 0


async def test_a_crashed_replicas_export_slot_frees_itself(
    client, headers, owner, trip_id, redis
) -> None:
    key = service.export_slots_key(owner.id)
    # Slots whose leases ran out (their replica stopped refreshing them) do not count.
    await redis.zadd(key, {"crashed-1": 1.0, "crashed-2": 2.0})
    response = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    assert response.status_code == 200
    # And a finished export gives its own slot back.
    assert await redis.zcard(key) == 0


async def test_the_export_slot_is_counted_per_user(
    client, headers, owner, trip_id, redis, make_user
) -> None:
    other = await make_user()
    key = service.export_slots_key(other.id)
    assert await take_slot(redis, key, limit=2)
    assert await take_slot(redis, key, limit=2)
    response = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    assert response.status_code == 200


async def test_deleting_a_long_trip_rewrites_none_of_its_fixes_and_ends_its_export(
    client, headers, owner, trip_id, session_factory
) -> None:
    # The trip's fixes are not touched (no `ON DELETE SET NULL` pass over them): deleting a
    # trip costs the same however long it is. They are reachable only through the trip.
    await store_fixes(session_factory, owner, trip_id, 2000)

    response = await client.delete(f"/v1/trips/{trip_id}", headers=headers)

    assert response.status_code == 204
    async with session_factory() as session:
        kept = await session.scalar(
            select(func.count()).where(TelemetryEvent.trip_id == uuid.UUID(trip_id))
        )
    assert kept == 2000
    export = await client.get(f"/v1/trips/{trip_id}/telemetry.csv", headers=headers)
    assert export.status_code == 404


@pytest.mark.parametrize(
    ("query", "params"),
    [
        (service._FIRST_PAGE_QUERY, (uuid.uuid4(), 1000)),
        (service._NEXT_PAGE_QUERY, (uuid.uuid4(), 1000, T0, 12345)),
    ],
    ids=["first page", "next page"],
)
async def test_each_export_page_is_read_in_order_from_the_trip_index_of_every_partition(
    db_connection, query, params
) -> None:
    # Not a sort of all the trip's fixes before the first byte: in every partition, the
    # (trip_id, recorded_at, id) index gives the rows in the page's order.
    nodes = await plan(db_connection, (query, params))

    types = [node.type for node in nodes]
    assert "Sort" not in types and "Incremental Sort" not in types, types
    scans = [node for node in nodes if (node.table or "").startswith("telemetry_events")]
    assert scans, types
    for node in scans:
        assert node.type in ("Index Scan", "Index Only Scan"), node
        assert node.index is not None and "trip_id_recorded_at_id" in node.index, node
