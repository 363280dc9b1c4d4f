"""SQL injection: hostile text in a body or a query parameter is data, never SQL. It is stored and
read back verbatim, or refused by validation; the tables and other users' rows are untouched."""

from __future__ import annotations

from sqlalchemy import func, select
from trip_factories import store_trips, trip_body

from tripline_common.data.models import Trip

HOSTILE = "Depot'); DROP TABLE trips; --"


async def test_hostile_text_in_a_body_is_stored_and_read_back_verbatim(
    client, headers, session_factory
) -> None:
    created = await client.post("/v1/trips", json=trip_body(name=HOSTILE), headers=headers)
    assert created.status_code == 201, created.text
    read = await client.get(f"/v1/trips/{created.json()['id']}", headers=headers)
    assert read.status_code == 200
    assert read.json()["name"] == HOSTILE
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).where(Trip.name == HOSTILE)) == 1


async def test_hostile_query_parameters_are_refused_and_widen_nothing(
    client, headers, make_user, session_factory
) -> None:
    await store_trips(session_factory, await make_user(), 3)  # Someone else's trips.
    for params in (
        {"sort": "name; DROP TABLE trips"},
        {"sort": "name) OR 1=1 --"},
        {"status": "active' OR '1'='1"},
        {"fields": "id,name FROM users --"},
    ):
        response = await client.get("/v1/trips", params=params, headers=headers)
        assert response.status_code in (400, 422), (params, response.text)
    mine = await client.get("/v1/trips", headers=headers)
    assert mine.status_code == 200
    assert mine.json()["items"] == []
    async with session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(Trip)) >= 3
