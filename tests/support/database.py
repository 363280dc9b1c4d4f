"""Raw asyncpg access to a test database, for tests that drive real processes from outside."""

from __future__ import annotations

from typing import Any

import asyncpg

from tripline_common.data import asyncpg_dsn


async def fetch(database_url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    """The rows `query` returns, over a connection of its own."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()
