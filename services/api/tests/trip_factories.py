"""Test helpers for the trips resource: request bodies, stored trips and devices, a SQL counter.

Imported by `test_trips_*.py` (pytest puts this directory on `sys.path`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from tripline_common.data.models import Device, Trip, TripStatus, User, Waypoint

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def trip_body(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /v1/trips` body."""
    body: dict[str, Any] = {
        "name": "Berlin to Hamburg",
        "origin_lat": 52.52,
        "origin_lon": 13.405,
        "destination_lat": 53.551,
        "destination_lon": 9.993,
        "planned_start": "2026-12-01T08:00:00Z",
        "planned_arrival": "2026-12-01T11:30:00Z",
        "speed_limit_kmh": 130,
        "corridor_m": 2000,
        "waypoints": [{"lat": 53.0, "lon": 11.0, "name": "Depot 7"}],
    }
    body.update(overrides)
    return body


def trip_body_v2(**overrides: Any) -> dict[str, Any]:
    """A valid `POST /v2/trips` body."""
    body = trip_body()
    for name in ("origin", "destination"):
        body[name] = {"lat": body.pop(f"{name}_lat"), "lon": body.pop(f"{name}_lon")}
    body.update(overrides)
    return body


async def store_device(session_factory: Any, owner: User) -> Device:
    """A device of `owner`, stored."""
    key = secrets.token_urlsafe(24)
    async with session_factory() as session:
        device = Device(
            owner_id=owner.id,
            name="Van 1",
            api_key_prefix=key[:8],
            api_key_hash=hashlib.sha256(key.encode()).hexdigest(),
        )
        session.add(device)
        await session.commit()
        return device


async def store_trips(
    session_factory: Any, owner: User, count: int, *, waypoints: int = 0, **fields: Any
) -> list[Trip]:
    """`count` trips of `owner`, stored directly (no API call, so no cache invalidation);
    trip i is named `Trip <i:02>`, starts i hours after START and was created i seconds apart."""
    trips = []
    async with session_factory() as session:
        for i in range(count):
            values: dict[str, Any] = {
                "owner_id": owner.id,
                "name": f"Trip {i:02}",
                "origin_lat": 52.5,
                "origin_lon": 13.4,
                "destination_lat": 53.5,
                "destination_lon": 10.0,
                "planned_start": START + timedelta(hours=i),
                "planned_arrival": START + timedelta(hours=i + 3),
                "created_at": START - timedelta(days=30) + timedelta(seconds=i),
                "status": TripStatus.PLANNED,
            }
            values.update(fields)
            trip = Trip(**values)
            trip.waypoints = [
                Waypoint(seq=seq, lat=50.0 + seq / 10, lon=10.0) for seq in range(waypoints)
            ]
            session.add(trip)
            trips.append(trip)
        await session.commit()
    return trips


class QueryLog:
    """The SQL statements run on the test connection while it is active."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def touching(self, table: str) -> list[str]:
        """Statements that read or write `table` (savepoints and the like excluded)."""
        return [sql for sql in self.statements if f" {table}" in sql or f"{table}." in sql]


@contextmanager
def count_queries(connection: AsyncConnection) -> Iterator[QueryLog]:
    """Record every statement the app sends through the test's connection."""
    log = QueryLog()

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        log.statements.append(statement)

    sync_connection = connection.sync_connection
    assert sync_connection is not None
    event.listen(sync_connection, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(sync_connection, "before_cursor_execute", record)


@contextmanager
def count_raw_queries(connection: Any) -> Iterator[QueryLog]:
    """Record every statement run on the raw asyncpg connection (the hot read path's pool)."""
    log = QueryLog()

    def record(query: Any) -> None:
        log.statements.append(query.query)

    connection.add_query_logger(record)
    try:
        yield log
    finally:
        connection.remove_query_logger(record)


def missing_id() -> str:
    return str(uuid.uuid4())
