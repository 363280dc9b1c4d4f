"""A raw asyncpg pool for the few hot read paths where the ORM's overhead is the bottleneck.

Everything that writes goes through SQLAlchemy sessions (`db.unit_of_work`). A read that every
client repeats many times a second (e.g. `GET /v1/trips/{id}`) may instead run one hand-written,
parameterised query on this pool: no ORM identity map, no BEGIN/ROLLBACK pair, no pre-ping round
trip (asyncpg's pool notices dead connections itself). docs/performance.md has the figures.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from tripline_common.platform.settings import CommonSettings


class PgExecutor(Protocol):
    """What hot paths use of the pool: one-shot queries (an `asyncpg.Pool` is one; tests pass
    a single connection inside their rolled-back transaction)."""

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as a DSN asyncpg accepts."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _keep_connection_state(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (`RESET ALL; UNLISTEN *; ...`: one more round trip per
    query). Hot paths run single statements and never change session state; anything that
    needs a transaction or a `SET` belongs on a SQLAlchemy session instead."""


async def create_pg_pool(settings: CommonSettings) -> asyncpg.Pool:
    """A pool that opens connections on demand (so a process starts while Postgres is down)."""
    if not settings.database_url:
        raise ValueError("DATABASE_URL is not set")
    server_settings = {"application_name": f"{settings.service_name}-fast"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    if settings.db_idle_in_transaction_timeout_ms:
        # A connection stuck in an open transaction (a handler awaiting something slow between
        # statements) holds locks and a pool slot: Postgres ends it instead.
        server_settings["idle_in_transaction_session_timeout"] = str(
            settings.db_idle_in_transaction_timeout_ms
        )
    pool: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=0,
        max_size=settings.db_fast_pool_size,
        timeout=settings.db_connect_timeout,
        command_timeout=max(settings.db_statement_timeout_ms / 1000 * 2, 30),
        max_inactive_connection_lifetime=settings.db_pool_recycle,
        server_settings=server_settings,
        reset=_keep_connection_state,
    )
    return pool
