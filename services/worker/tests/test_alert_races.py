"""Alert windows under concurrency: batches of one trip judged at the same moment by two
workers, on a committed database (each job on its own connection, as in production).

A test holds the trip's row lock until both jobs are queued behind it, then lets them go: they
race as two workers would, and the trip lock is what orders them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from worker_factories import along_route, job

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations.runner import upgrade
from tripline_worker.context import context

process = job("process_batch")


@pytest.fixture
def database_url(scratch_database: Callable[[], str]) -> str:
    """A migrated database of this test's own: the jobs' commits are real commits."""
    url = scratch_database()
    upgrade(url)
    return url


@pytest.fixture
async def session_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(database_url, pool_size=4, max_overflow=0)
    yield async_sessionmaker(engine, expire_on_commit=False)
    await engine.dispose()


async def race_behind_the_trip_lock(database_url: str, trip_id, *jobs) -> list[str]:
    """Run `jobs` while the trip's row is locked; release it once all of them wait for a lock,
    so they then contend for the trip as concurrent workers do."""
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    observer = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT 1 FROM trips WHERE id = $1 FOR UPDATE", trip_id)
        tasks = [asyncio.create_task(coroutine) for coroutine in jobs]
        waiting = 0
        while waiting < len(tasks):
            assert not any(task.done() for task in tasks), [t.result() for t in tasks if t.done()]
            await asyncio.sleep(0.02)
            waiting = await observer.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        await transaction.commit()
        return list(await asyncio.gather(*tasks))
    finally:
        await holder.close()
        await observer.close()


async def speeding_alerts(database_url: str, trip_id) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetch(
            "SELECT dedupe_key, observed_at FROM alerts WHERE trip_id = $1 AND rule = 'speeding'",
            trip_id,
        )
    finally:
        await conn.close()


async def test_two_batches_of_one_burst_judged_at_once_raise_one_alert(
    ctx, database_url, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=80)
    window = context(ctx).settings.alert_window_seconds
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2 * window)
    one = await make_batch(owner, along_route(3, start=start, speed_kmh=95))
    other = await make_batch(
        owner, along_route(3, start=start + timedelta(seconds=window // 2), speed_kmh=95)
    )

    outcomes = await race_behind_the_trip_lock(
        database_url, trip_id, process(ctx, str(one)), process(ctx, str(other))
    )

    assert outcomes == ["processed", "processed"]
    assert len(await speeding_alerts(database_url, trip_id)) == 1


async def test_one_batch_run_by_two_workers_at_once_raises_its_alert_once(
    ctx, database_url, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=80)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    batch_id = await make_batch(owner, along_route(3, start=start, speed_kmh=95))

    outcomes = await race_behind_the_trip_lock(
        database_url, trip_id, process(ctx, str(batch_id)), process(ctx, str(batch_id))
    )

    assert sorted(outcomes) == ["already_processed", "processed"]
    [alert] = await speeding_alerts(database_url, trip_id)
    assert alert["observed_at"] == start
