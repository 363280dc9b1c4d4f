"""Revision 0008 builds the trigram indexes of the admin's searches where pg_trgm can be had, and
otherwise reaches head without them, saying why: on any server, the same tests pass."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from types import ModuleType

import asyncpg
import pytest
from sqlalchemy import make_url

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations import runner

REVISION = "0008_list_indexes"


def revision_module() -> ModuleType:
    script = runner._script_directory().get_revision(REVISION)
    assert script is not None
    return script.module


@pytest.mark.parametrize(
    ("available", "installed", "may_create", "built"),
    [
        (True, False, True, True),  # The system PostgreSQL with contrib: created, then indexed.
        (True, True, False, True),  # Installed by a DBA beforehand: no privilege needed.
        (False, False, True, False),  # The embedded server of `make dev`: no pg_trgm at all.
        (True, False, False, False),  # A role without CREATE on the database.
    ],
)
def test_trigram_indexes_are_built_only_where_pg_trgm_is_installed_or_may_be_created(
    available: bool, installed: bool, may_create: bool, built: bool
) -> None:
    reason = revision_module().trigram_skip_reason(
        available=available, installed=installed, may_create=may_create
    )
    assert (reason is None) == built
    if reason is not None:
        assert "pg_trgm" in reason or "CREATE" in reason


async def trigram_state(url: str) -> tuple[bool, set[str]]:
    """Whether the server offers pg_trgm, and the trigram indexes the database has."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        available = await connection.fetchval(
            "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm')"
        )
        rows = await connection.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexdef LIKE '%gin_trgm_ops%'"
        )
    finally:
        await connection.close()
    return available, {row["indexname"] for row in rows}


@pytest.fixture
def scratch_url(scratch_database: Callable[[], str]) -> str:
    return runner.database_url(scratch_database())


async def test_head_has_the_trigram_indexes_exactly_when_the_server_offers_pg_trgm(
    scratch_url: str,
) -> None:
    await asyncio.to_thread(runner.upgrade, scratch_url)

    available, indexes = await trigram_state(scratch_url)

    expected = {index.name for index in revision_module().TRIGRAM_INDEXES}
    assert indexes == (expected if available else set())
    assert all(runner.is_optional_index(name) for name in expected)
    await asyncio.to_thread(runner.check, scratch_url)  # Optional indexes are no drift.


@pytest.fixture
async def role_without_create(scratch_url: str) -> AsyncIterator[str]:
    """The scratch database's URL for a role that owns its schema but may not create extensions
    there: what a managed database's application role often is."""
    role = f"tripline_no_create_{make_url(scratch_url).database}"
    connection = await asyncpg.connect(asyncpg_dsn(scratch_url))
    try:
        await connection.execute(f'CREATE ROLE "{role}" LOGIN')
        await connection.execute(f'ALTER SCHEMA public OWNER TO "{role}"')
        database = make_url(scratch_url).database
        await connection.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
    finally:
        await connection.close()
    yield make_url(scratch_url).set(username=role).render_as_string(hide_password=False)
    connection = await asyncpg.connect(asyncpg_dsn(scratch_url))
    try:
        await connection.execute(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
        await connection.execute(f'DROP OWNED BY "{role}"')
        await connection.execute(f'DROP ROLE "{role}"')
    finally:
        await connection.close()


async def test_a_role_that_may_not_create_pg_trgm_reaches_head_without_trigram_indexes_and_says_why(
    role_without_create: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tripline.migrate"):
        await asyncio.to_thread(runner.upgrade, role_without_create)

    assert await asyncio.to_thread(runner.current_revision, role_without_create) == (
        runner.head_revision()
    )
    assert (await trigram_state(role_without_create))[1] == set()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "tripline.migrate"]
    assert warning.startswith("trigram indexes skipped: the ")  # Then the reason, in words.


async def test_the_upgrade_counts_the_ended_trips_already_there_and_the_triggers_keep_counting(
    scratch_url: str,
) -> None:
    await asyncio.to_thread(runner.upgrade, scratch_url, "0007_alert_observed_at")
    connection = await asyncpg.connect(asyncpg_dsn(scratch_url))
    try:
        owner = await connection.fetchval(
            "INSERT INTO users (email, password_hash, display_name)"
            " VALUES ('old@example.com', 'x', 'Old') RETURNING id"
        )
        insert_trip = (
            "INSERT INTO trips (owner_id, name, status, origin_lat, origin_lon, destination_lat,"
            " destination_lon, planned_start, planned_arrival, distance_m)"
            " VALUES ($1, 'Trip', $2, 0, 0, 1, 1, now(), now() + interval '1 hour', $3)"
        )
        for status, distance in [("completed", 10), ("completed", 5), ("cancelled", 1)]:
            await connection.execute(insert_trip, owner, status, distance)
        await connection.execute(insert_trip, owner, "active", 100)

        await asyncio.to_thread(runner.upgrade, scratch_url)
        upgraded = await totals(connection)
        await connection.execute(insert_trip, owner, "completed", 2)
        await connection.execute("UPDATE trips SET status = 'completed' WHERE status = 'active'")
        await connection.execute("DELETE FROM trips WHERE status = 'cancelled'")
        kept = await totals(connection)
    finally:
        await connection.close()

    assert upgraded == {("completed", 2, 15.0), ("cancelled", 1, 1.0)}
    assert kept == {("completed", 4, 117.0), ("cancelled", 0, 0.0)}


async def totals(connection: asyncpg.Connection) -> set[tuple[str, int, float]]:
    rows = await connection.fetch("SELECT status, trips, distance_m FROM trip_history_totals")
    return {(row["status"], row["trips"], row["distance_m"]) for row in rows}
