"""Alembic environment of Tripline: migrations over asyncpg (loaded by Alembic, never imported)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from tripline_common.data.models import metadata
from tripline_common.migrations.runner import (
    DATABASE_URL_ATTRIBUTE,
    create_migration_engine,
    database_url,
)

config = context.config
target_metadata = metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our column types (UTCDateTime, StrEnumType) as the plain SQLAlchemy type they store.

    A migration is a frozen record of the schema, so it must not import model code that will
    change or disappear later; the Python-side behaviour of these types is irrelevant to DDL.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        **kwargs,
    )


def _url() -> str:
    url = config.attributes.get(DATABASE_URL_ATTRIBUTE)
    return url if isinstance(url, str) else database_url(None)


def run_migrations_offline() -> None:
    """`--sql` mode: write the SQL to stdout instead of executing it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Connect with asyncpg and run the migrations in one transaction (DDL is transactional)."""
    engine = create_migration_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
