"""Revision 0011 turns a populated `telemetry_events` into a partitioned table without copying it:
the rows stay, in the legacy partition, with their ids; new ids continue after them; a trip's
deletion no longer touches its events. The way back copies them into one plain table again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations import runner

BEFORE = "0010_trip_live_counts"
EVENTS = 300


@pytest.fixture
async def populated(
    scratch_database: Callable[[], str],
) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A database at 0009 holding one trip with `EVENTS` fixes, half of them attached to it."""
    url = runner.database_url(scratch_database())
    await asyncio.to_thread(runner.upgrade, url, BEFORE)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        owner = await connection.fetchval(
            "INSERT INTO users (email, password_hash, display_name)"
            " VALUES ('fleet@example.com', 'x', 'Fleet') RETURNING id"
        )
        device = await connection.fetchval(
            "INSERT INTO devices (owner_id, name, api_key_prefix, api_key_hash)"
            " VALUES ($1, 'van', 'tl_abc', 'hash') RETURNING id",
            owner,
        )
        trip = await connection.fetchval(
            "INSERT INTO trips (owner_id, device_id, name, status, origin_lat, origin_lon,"
            " destination_lat, destination_lon, planned_start, planned_arrival)"
            " VALUES ($1, $2, 'Trip', 'active', 0, 0, 1, 1, now(), now() + interval '1 hour')"
            " RETURNING id",
            owner,
            device,
        )
        batch = await connection.fetchval(
            "INSERT INTO telemetry_batches (device_id, event_count, status)"
            " VALUES ($1, $2, 'processed') RETURNING id",
            device,
            EVENTS,
        )
        await connection.execute(
            "INSERT INTO telemetry_events (batch_id, device_id, trip_id, recorded_at, lat, lon)"
            " SELECT $1, $2, CASE WHEN g % 2 = 0 THEN $3::uuid END,"
            "  now() - g * interval '1 second', 52, 13"
            " FROM generate_series(1, $4) AS g",
            batch,
            device,
            trip,
            EVENTS,
        )
        yield url, connection
    finally:
        await connection.close()


async def rows(connection: asyncpg.Connection) -> set[tuple[int, object]]:
    return {
        (row["id"], row["trip_id"])
        for row in await connection.fetch("SELECT id, trip_id FROM telemetry_events")
    }


async def test_the_existing_rows_become_the_legacy_partition_and_new_ids_continue_after_them(
    populated: tuple[str, asyncpg.Connection],
) -> None:
    url, connection = populated
    before = await rows(connection)

    await asyncio.to_thread(runner.upgrade, url)

    partitions = await connection.fetch(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'telemetry_events'::regclass"
    )
    bounds = {row["relname"]: row["bound"] for row in partitions}
    assert set(bounds) == {"telemetry_events_legacy", "telemetry_events_default"}
    assert bounds["telemetry_events_legacy"].startswith("FOR VALUES FROM (MINVALUE) TO (")
    assert await rows(connection) == before
    assert await connection.fetchval("SELECT count(*) FROM ONLY telemetry_events_legacy") == EVENTS
    [device, batch] = await connection.fetchrow(
        "SELECT device_id, batch_id FROM telemetry_events LIMIT 1"
    )
    new_id = await connection.fetchval(
        "INSERT INTO telemetry_events (batch_id, device_id, recorded_at, lat, lon)"
        " VALUES ($1, $2, now(), 52, 13) RETURNING id",
        batch,
        device,
    )
    assert new_id > max(event_id for event_id, _ in before)
    # A trip's deletion leaves its events as they are (no foreign key pass over them).
    await connection.execute("DELETE FROM trips")
    assert (
        await connection.fetchval("SELECT count(*) FROM telemetry_events WHERE trip_id IS NOT NULL")
        == EVENTS // 2
    )
    await asyncio.to_thread(runner.check, url)  # The models declare this shape.


async def test_the_way_back_copies_every_row_into_one_plain_table_with_its_foreign_keys(
    populated: tuple[str, asyncpg.Connection],
) -> None:
    url, connection = populated
    before = await rows(connection)
    await asyncio.to_thread(runner.upgrade, url)

    await asyncio.to_thread(runner.downgrade, url, BEFORE)

    plain = "SELECT relkind = 'r' FROM pg_class WHERE relname = 'telemetry_events'"
    assert await connection.fetchval(plain)  # No longer partitioned.
    assert await rows(connection) == before
    await connection.execute("DELETE FROM trips")  # ON DELETE SET NULL is back.
    assert (
        await connection.fetchval("SELECT count(*) FROM telemetry_events WHERE trip_id IS NOT NULL")
        == 0
    )
    await asyncio.to_thread(runner.upgrade, url)  # And forward again.
    assert await asyncio.to_thread(runner.current_revision, url) == runner.head_revision()
