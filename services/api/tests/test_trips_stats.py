"""Trip statistics: the figures, the Redis cache (a hit runs no SQL on trips), and its
invalidation by every kind of trip write."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from sqlalchemy import update
from sqlmodel import col
from trip_factories import count_queries, store_trips, trip_body

from tripline_api.trips.service import TRIP_STATS
from tripline_common.data.models import Trip


async def stats(client, headers) -> dict:
    response = await client.get("/v1/trips/stats", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_stats_count_trips_by_status_and_sum_the_distance(
    client, headers, owner, session_factory
) -> None:
    await store_trips(session_factory, owner, 2, status="planned")
    await store_trips(session_factory, owner, 3, status="completed", distance_m=1000.5)
    await store_trips(session_factory, owner, 1, status="cancelled", distance_m=10)

    figures = await stats(client, headers)

    assert figures["total"] == 6
    assert figures["by_status"] == {"planned": 2, "active": 0, "completed": 3, "cancelled": 1}
    assert figures["total_distance_m"] == pytest.approx(3011.5)
    assert figures["next_planned_start"] is None or figures["next_planned_start"].endswith("Z")


async def test_a_user_without_trips_gets_zeros(client, headers) -> None:
    figures = await stats(client, headers)

    assert figures["total"] == 0 and figures["total_distance_m"] == 0
    assert figures["next_planned_start"] is None


async def test_the_second_read_comes_from_redis_without_touching_the_trips_table(
    client, headers, owner, session_factory, db_connection, redis_url
) -> None:
    await store_trips(session_factory, owner, 3)

    with count_queries(db_connection) as first_read:
        first = await stats(client, headers)
    with count_queries(db_connection) as second_read:
        second = await stats(client, headers)

    assert len(first_read.touching("trips")) == 1
    assert second_read.touching("trips") == []
    assert second == first  # Same `computed_at`: the cached value.
    redis = Redis.from_url(redis_url)
    try:
        ttl = await redis.ttl(f"cache:trip-stats:{owner.id}")
    finally:
        await redis.aclose()
    assert 0 < ttl <= TRIP_STATS.ttl_seconds


async def test_stats_are_cached_per_user(
    client, headers, owner, session_factory, make_user, auth_headers
) -> None:
    other = await make_user()
    other_headers = await auth_headers(other)
    await store_trips(session_factory, owner, 2)
    await store_trips(session_factory, other, 5)

    assert (await stats(client, headers))["total"] == 2
    assert (await stats(client, other_headers))["total"] == 5
    assert (await stats(client, headers))["total"] == 2


WRITES = {
    "create": ("post", "/{v}/trips", lambda: trip_body(), 1),
    "bulk create": ("post", "/{v}/trips/bulk", lambda: {"items": [trip_body(), trip_body()]}, 2),
    "replace": ("put", "/{v}/trips/{id}", lambda: trip_body(status="cancelled"), 0),
    "update": ("patch", "/{v}/trips/{id}", lambda: {"status": "cancelled"}, 0),
    "delete": ("delete", "/{v}/trips/{id}", None, -1),
}


@pytest.mark.parametrize("write", list(WRITES))
async def test_every_trip_write_invalidates_the_cached_stats(
    client, headers, owner, session_factory, db_connection, write
) -> None:
    [trip] = await store_trips(session_factory, owner, 1)
    before = await stats(client, headers)
    with count_queries(db_connection) as cached:
        assert await stats(client, headers) == before
    assert cached.touching("trips") == []

    method, path, body, added = WRITES[write]
    url = path.format(v="v1", id=trip.id)
    kwargs = {"json": body()} if body else {}
    response = await client.request(method, url, headers=headers, **kwargs)
    assert response.status_code < 300, response.text

    after = await stats(client, headers)
    assert after["total"] == before["total"] + added
    if write in ("replace", "update"):
        assert after["by_status"]["cancelled"] == 1 and after["by_status"]["planned"] == 0
    assert after["computed_at"] > before["computed_at"]


async def test_a_refused_write_leaves_the_figures_right(client, headers, owner, session_factory):
    await store_trips(session_factory, owner, 1)
    before = await stats(client, headers)

    refused = await client.post("/v1/trips", json=trip_body(origin_lat=500), headers=headers)

    assert refused.status_code == 422
    assert (await stats(client, headers))["total"] == before["total"]


async def test_v2_shares_the_stats_and_their_invalidation(client, headers) -> None:
    v1_before = await stats(client, headers)

    await client.post(
        "/v2/trips",
        json={
            **{k: v for k, v in trip_body().items() if not k.endswith(("_lat", "_lon"))},
            "origin": {"lat": 1, "lon": 1},
            "destination": {"lat": 2, "lon": 2},
        },
        headers=headers,
    )
    v2_after = (await client.get("/v2/trips/stats", headers=headers)).json()

    assert v2_after["total"] == v1_before["total"] + 1


async def test_ended_trips_are_counted_from_totals_that_follow_every_change_of_the_history(
    client, headers, owner, session_factory, make_user, redis_url
) -> None:
    completed = await store_trips(session_factory, owner, 2, status="completed", distance_m=100)
    [active] = await store_trips(session_factory, owner, 1, status="active", distance_m=40)
    [cancelled] = await store_trips(session_factory, owner, 1, status="cancelled", distance_m=7)
    other = await make_user()
    await store_trips(session_factory, other, 1, status="completed", distance_m=5000)

    ended = await client.patch(
        f"/v1/trips/{active.id}", json={"status": "completed"}, headers=headers
    )
    deleted = await client.delete(f"/v1/trips/{completed[0].id}", headers=headers)
    async with session_factory() as session:  # A write outside the API, as a script would.
        await session.execute(
            update(Trip).where(col(Trip.id) == cancelled.id).values(distance_m=10)
        )
        await session.commit()
    redis = Redis.from_url(redis_url)
    try:
        await TRIP_STATS.invalidate(redis, str(owner.id))  # The API did not see that write.
    finally:
        await redis.aclose()

    assert ended.status_code == 200 and deleted.status_code == 204
    figures = await stats(client, headers)
    assert figures["by_status"] == {"planned": 0, "active": 0, "completed": 2, "cancelled": 1}
    assert figures["total"] == 3
    assert figures["total_distance_m"] == pytest.approx(150)
