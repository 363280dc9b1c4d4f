"""`one_connection`: units of work in a row on one checkout, a broken connection replaced."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import event, text

from tripline_common.data import (
    create_engine,
    create_session_factory,
    driver_connection,
    one_connection,
    retry_transient,
    unit_of_work,
)


async def test_units_of_work_in_a_row_share_one_checkout(make_settings: Any) -> None:
    engine = create_engine(make_settings())
    checkouts: list[object] = []
    event.listen(engine.sync_engine.pool, "checkout", lambda *args: checkouts.append(args))
    try:
        async with one_connection(create_session_factory(engine)) as factory:
            async with unit_of_work(factory) as session:
                # A temporary table lives and dies with its connection.
                await session.execute(text("CREATE TEMPORARY TABLE one_checkout (n int)"))
                await session.execute(text("INSERT INTO one_checkout VALUES (1)"))
            async with unit_of_work(factory) as session:
                connection = await driver_connection(session)
                assert await connection.fetchval("SELECT n FROM one_checkout") == 1
        assert len(checkouts) == 1
    finally:
        await engine.dispose()


async def test_driver_connection_begins_the_sessions_transaction(make_settings: Any) -> None:
    """Plain SQL first, before any statement of the session: it still rolls back with it."""
    engine = create_engine(make_settings())
    try:
        factory = create_session_factory(engine)
        async with factory() as session:
            connection = await driver_connection(session)
            await connection.execute("CREATE TEMPORARY TABLE rolled_back (n int)")
            assert connection.is_in_transaction()
            await session.rollback()
            assert not await connection.fetchval(
                "SELECT count(*) FROM pg_class WHERE relname = 'rolled_back'"
            )
    finally:
        await engine.dispose()


async def backends_of_a_retried_unit(
    make_settings: Any, open_driver: Callable[[Any], AbstractAsyncContextManager[Any]]
) -> list[int]:
    """Run a retried unit of work on `one_connection` whose first attempt kills its own
    backend; return the backend of each attempt. `open_driver(factory)` yields the driver
    connection an attempt runs on."""
    engine = create_engine(make_settings())
    pids: list[int] = []

    @retry_transient(max_wait=0.1)
    async def work(factory: Any) -> None:
        async with open_driver(factory) as connection:
            pids.append(await connection.fetchval("SELECT pg_backend_pid()"))
            if len(pids) == 1:
                await connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    try:
        async with one_connection(create_session_factory(engine)) as factory:
            await work(factory)
    finally:
        await engine.dispose()
    return pids


async def test_a_connection_broken_inside_a_unit_of_work_is_replaced(make_settings: Any) -> None:
    @asynccontextmanager
    async def in_a_unit_of_work(factory: Any) -> AsyncIterator[Any]:
        async with unit_of_work(factory) as session:
            yield await driver_connection(session)

    pids = await backends_of_a_retried_unit(make_settings, in_a_unit_of_work)
    assert len(pids) == 2
    assert pids[1] != pids[0]


async def test_a_connection_lost_outside_a_transaction_is_replaced(make_settings: Any) -> None:
    """A statement that commits by itself (`begin=False`) is run by the driver alone: the
    dialect never sees the connection die, the session's rollback drops it."""

    @asynccontextmanager
    async def outside_a_transaction(factory: Any) -> AsyncIterator[Any]:
        async with factory() as session, session.begin():
            connection = await driver_connection(session, begin=False)
            assert not connection.is_in_transaction()
            yield connection

    pids = await backends_of_a_retried_unit(make_settings, outside_a_transaction)
    assert len(pids) == 2
    assert pids[1] != pids[0]
