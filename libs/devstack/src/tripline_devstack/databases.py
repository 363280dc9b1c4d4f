"""Creates and drops databases on any PostgreSQL server, embedded or not."""

from __future__ import annotations

import contextlib

import asyncpg

from tripline_devstack.probes import asyncpg_dsn, run_in_fresh_loop, with_database

MAINTENANCE_DATABASE = "postgres"
_PROTECTED = frozenset({MAINTENANCE_DATABASE, "template0", "template1"})


def ensure_database(server_url: str, name: str) -> None:
    """Create database `name` on the server of `server_url` unless it already exists.

    Connects to the server's maintenance database, so the database named in `server_url`
    (if any) need not exist. Safe to call concurrently from several processes.
    """

    async def create() -> None:
        connection = await _connect_to_maintenance_db(server_url)
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                # Another process may create it between our check and our CREATE: fine too.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await connection.execute(f"CREATE DATABASE {quote_identifier(name)}")
        finally:
            await connection.close()

    run_in_fresh_loop(create)


def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` on the server of `server_url` if it exists, ending its sessions first.

    Uses `DROP DATABASE ... WITH (FORCE)` (PostgreSQL 13+), which terminates the connections
    and drops in one step, so a client reconnecting in between cannot make the drop fail.
    """
    if name in _PROTECTED:
        raise ValueError(f"refusing to drop the {name!r} database")

    async def drop() -> None:
        connection = await _connect_to_maintenance_db(server_url)
        try:
            await connection.execute(
                f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)"
            )
        finally:
            await connection.close()

    run_in_fresh_loop(drop)


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier (database names cannot be query parameters)."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


async def _connect_to_maintenance_db(server_url: str) -> asyncpg.Connection:
    dsn = asyncpg_dsn(with_database(server_url, MAINTENANCE_DATABASE))
    return await asyncpg.connect(dsn, timeout=10)
