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
    is_optional_index,
    is_partition,
)
from tripline_common.migrations.safety import session_timeouts_sql

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


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Compare everything but the optional indexes found in the database (`is_optional_index`)
    and the partitions of a partitioned table (`is_partition`)."""
    if not reflected or name is None:
        return True
    if type_ == "table":
        return not is_partition(name)
    return not (type_ == "index" and is_optional_index(name))


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
        # A transaction per revision: a failure leaves the database at the previous revision,
        # and a revision's own `set_timeouts` (SET LOCAL) ends with it.
        transaction_per_migration=True,
        **kwargs,
    )


def _url() -> str:
    url = config.attributes.get(DATABASE_URL_ATTRIBUTE)
    return url if isinstance(url, str) else database_url(None)


def run_migrations_offline() -> None:
    """`--sql` mode: write the SQL to stdout instead of executing it."""
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    for statement in session_timeouts_sql():
        context.execute(statement)
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    for statement in session_timeouts_sql():
        connection.exec_driver_sql(statement)
    connection.commit()  # The settings hold for the session: every revision's transaction.
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    """Connect with asyncpg and run the migrations, each in its transaction (DDL is
    transactional), under the lock and statement timeouts of `safety`."""
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
