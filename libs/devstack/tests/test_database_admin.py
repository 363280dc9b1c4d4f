"""ensure_database and drop_database against a real server."""

from __future__ import annotations

import asyncpg
import pytest

from tripline_devstack import EmbeddedPostgres, drop_database, ensure_database, postgres_answers


def test_ensure_database_creates_it_once_and_is_idempotent(postgres: EmbeddedPostgres) -> None:
    assert not postgres_answers(postgres.url("orders"))

    ensure_database(postgres.url(), "orders")
    ensure_database(postgres.url("orders"), "orders")  # a URL naming it works as well

    assert postgres_answers(postgres.url("orders"))


async def test_ensure_database_accepts_names_that_need_quoting(
    postgres: EmbeddedPostgres,
) -> None:
    name = 'odd "name"; DROP TABLE x'

    ensure_database(postgres.url(), name)

    connection = await asyncpg.connect(postgres.url().replace("+asyncpg", ""))
    try:
        assert await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await connection.close()


async def test_drop_database_ends_open_sessions_and_drops_it(postgres: EmbeddedPostgres) -> None:
    ensure_database(postgres.url(), "doomed")
    session = await asyncpg.connect(postgres.url("doomed").replace("+asyncpg", ""))

    drop_database(postgres.url(), "doomed")

    assert not postgres_answers(postgres.url("doomed"))
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
        await session.fetchval("SELECT 1")
    session.terminate()


def test_drop_database_of_a_missing_database_does_nothing(postgres: EmbeddedPostgres) -> None:
    drop_database(postgres.url(), "never_created")


def test_drop_database_refuses_the_maintenance_and_template_databases(
    postgres: EmbeddedPostgres,
) -> None:
    for name in ("postgres", "template0", "template1"):
        with pytest.raises(ValueError, match="refusing"):
            drop_database(postgres.url(), name)
