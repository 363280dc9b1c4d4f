"""Every connection of a process (engine and raw pool) has Postgres end idle transactions."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tripline_common.data import asyncpg_dsn, create_engine, create_pg_pool
from tripline_common.platform import CommonSettings

WAIT = 10.0


async def wait_until_backend_gone(database_url: str, pid: int) -> None:
    """Poll pg_stat_activity until Postgres has ended the backend `pid`."""
    watcher = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = asyncio.get_running_loop().time() + WAIT
        while await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            assert asyncio.get_running_loop().time() < deadline, "the idle transaction lives on"
            await asyncio.sleep(0.05)
    finally:
        await watcher.close()


async def test_the_engine_ends_a_transaction_left_idle(make_settings: Any) -> None:
    settings: CommonSettings = make_settings(db_idle_in_transaction_timeout_ms=200)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            assert (await conn.scalar(text("SHOW idle_in_transaction_session_timeout"))) == "200ms"
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))  # Opens a transaction.
            await wait_until_backend_gone(settings.database_url or "", pid)
            with pytest.raises(DBAPIError):
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_the_raw_pool_ends_a_transaction_left_idle(make_settings: Any) -> None:
    settings: CommonSettings = make_settings(db_idle_in_transaction_timeout_ms=200)
    pool = await create_pg_pool(settings)
    try:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await wait_until_backend_gone(settings.database_url or "", pid)
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await conn.fetchval("SELECT 1")
    finally:
        pool.terminate()


def test_the_default_is_thirty_seconds() -> None:
    assert CommonSettings(_env_file=None).db_idle_in_transaction_timeout_ms == 30_000  # type: ignore[call-arg]
