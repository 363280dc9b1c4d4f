"""Revision 0010 counts the planned and active trips already there, and its triggers keep
`trip_live_counts` equal to a count of the live trips through every way a trip enters, moves
between or leaves the live statuses."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations import runner

INSERT_TRIP = (
    "INSERT INTO trips (owner_id, name, status, origin_lat, origin_lon, destination_lat,"
    " destination_lon, planned_start, planned_arrival)"
    " VALUES ($1, 'Trip', $2, 0, 0, 1, 1, now(), now() + interval '1 hour') RETURNING id"
)


async def kept(connection: asyncpg.Connection) -> set[tuple[object, str, int]]:
    rows = await connection.fetch(
        "SELECT owner_id, status, trips FROM trip_live_counts WHERE trips <> 0"
    )
    return {(row["owner_id"], row["status"], row["trips"]) for row in rows}


async def counted(connection: asyncpg.Connection) -> set[tuple[object, str, int]]:
    rows = await connection.fetch(
        "SELECT owner_id, status, count(*) AS trips FROM trips"
        " WHERE status IN ('planned', 'active') GROUP BY owner_id, status"
    )
    return {(row["owner_id"], row["status"], row["trips"]) for row in rows}


async def test_the_upgrade_counts_the_live_trips_and_the_triggers_follow_every_change(
    scratch_database: Callable[[], str],
) -> None:
    url = runner.database_url(scratch_database())
    await asyncio.to_thread(runner.upgrade, url, "0009_telemetry_received_at")
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        owners = [
            await connection.fetchval(
                "INSERT INTO users (email, password_hash, display_name)"
                f" VALUES ('u{n}@example.com', 'x', 'U') RETURNING id"
            )
            for n in range(2)
        ]
        trips = {}
        for name, owner, status in [
            ("a", owners[0], "planned"),
            ("b", owners[0], "planned"),
            ("c", owners[0], "active"),
            ("d", owners[1], "planned"),
            ("e", owners[1], "completed"),
        ]:
            trips[name] = await connection.fetchval(INSERT_TRIP, owner, status)

        await asyncio.to_thread(runner.upgrade, url, "0010_trip_live_counts")
        assert (
            await kept(connection)
            == await counted(connection)
            == {
                (owners[0], "planned", 2),
                (owners[0], "active", 1),
                (owners[1], "planned", 1),
            }
        )

        changes = [
            ("UPDATE trips SET status = 'active' WHERE id = $1", trips["a"]),
            ("UPDATE trips SET status = 'completed' WHERE id = $1", trips["c"]),
            ("UPDATE trips SET status = 'cancelled' WHERE id = $1", trips["b"]),
            ("UPDATE trips SET owner_id = $2 WHERE id = $1", trips["d"]),
            ("DELETE FROM trips WHERE id = $1", trips["a"]),
            ("UPDATE trips SET distance_m = 5 WHERE id = $1", trips["d"]),  # No live change.
        ]
        for sql, trip in changes:
            args = (trip, owners[0]) if "$2" in sql else (trip,)
            await connection.execute(sql, *args)
            assert await kept(connection) == await counted(connection), sql
        await connection.execute(INSERT_TRIP, owners[1], "active")
        assert (
            await kept(connection)
            == await counted(connection)
            == {
                (owners[0], "planned", 1),
                (owners[1], "active", 1),
            }
        )
    finally:
        await connection.close()
