"""Telemetry's day partitions: the cron creates them ahead, events land in their day, rows the
DEFAULT partition took move into their day when it is created, and a day past retention is
dropped whole unless it holds events of a pending batch; batches go with their day.

Every change here is DDL inside the test's rolled-back transaction: the database the other tests
share keeps its partitions as the migrations made them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from worker_factories import along_route, job

from tripline_common.data.models import BatchStatus, TelemetryBatch, TelemetryEvent
from tripline_worker.context import context
from tripline_worker.telemetry.partitions import (
    DAY,
    DEFAULT,
    LEGACY,
    day_start,
    list_partitions,
    maintain_partitions,
    partition_name,
)


async def partition_of(session_factory, batch_id) -> set[str]:
    """The partitions holding the batch's events."""
    async with session_factory() as session:
        rows = await session.scalars(
            select(text("tableoid::regclass::text"))
            .select_from(TelemetryEvent)
            .where(TelemetryEvent.batch_id == batch_id)
        )
        return set(rows)


async def names(session_factory) -> set[str]:
    async with session_factory() as session:
        return {partition.name for partition in await list_partitions(session)}


async def legacy_end(session_factory) -> datetime:
    """The cut-over revision 0011 chose: where the legacy partition ends and days begin."""
    async with session_factory() as session:
        [legacy] = [p for p in await list_partitions(session) if p.name == LEGACY]
    assert legacy.upper is not None
    return legacy.upper


async def test_the_cron_creates_each_day_ahead_once_and_a_days_events_land_in_it(
    session_factory, make_owner, make_batch
) -> None:
    start = await legacy_end(session_factory)
    now = start + timedelta(hours=5)

    first = await maintain_partitions(
        session_factory=session_factory, now=now, days_ahead=3, retention_days=30
    )
    again = await maintain_partitions(
        session_factory=session_factory, now=now, days_ahead=3, retention_days=30
    )

    expected = [partition_name(start + n * DAY) for n in range(4)]
    assert first.created == expected
    assert again.created == []
    assert sorted(first.by_batch) == [DEFAULT, LEGACY]
    assert set(expected) | {LEGACY, DEFAULT} == await names(session_factory)
    owner = await make_owner()
    second_day = await make_batch(
        owner, along_route(3, start=now), received_at=start + DAY + timedelta(minutes=1)
    )
    before_cutover = await make_batch(
        owner, along_route(3, start=now), received_at=start - timedelta(minutes=1)
    )
    assert await partition_of(session_factory, second_day) == {expected[1]}
    assert await partition_of(session_factory, before_cutover) == {LEGACY}


async def test_events_the_default_partition_took_move_into_their_day_when_it_is_created(
    session_factory, make_owner, make_batch
) -> None:
    # No day partition covers a week past the cut-over (the worker was down, say).
    late = day_start(await legacy_end(session_factory)) + 7 * DAY + timedelta(hours=2)
    owner = await make_owner()
    batch = await make_batch(owner, along_route(4, start=late), received_at=late)
    assert await partition_of(session_factory, batch) == {DEFAULT}
    async with session_factory() as session:
        ids = set(
            await session.scalars(select(TelemetryEvent.id).where(TelemetryEvent.batch_id == batch))
        )

    changes = await maintain_partitions(
        session_factory=session_factory, now=late, days_ahead=1, retention_days=30
    )

    assert changes.created == [
        partition_name(day_start(late)),
        partition_name(day_start(late) + DAY),
    ]
    assert changes.moved_from_default == 4
    assert await partition_of(session_factory, batch) == {partition_name(day_start(late))}
    async with session_factory() as session:
        moved = set(
            await session.scalars(select(TelemetryEvent.id).where(TelemetryEvent.batch_id == batch))
        )
    assert moved == ids  # The same rows, ids kept.


async def test_a_day_past_retention_is_dropped_whole_unless_a_batch_of_it_is_still_pending(
    ctx, session_factory, make_owner, make_batch
) -> None:
    first_day = day_start(await legacy_end(session_factory))
    await maintain_partitions(
        session_factory=session_factory, now=first_day, days_ahead=2, retention_days=30
    )
    owner = await make_owner()
    done = await make_batch(
        owner,
        along_route(3, start=first_day),
        received_at=first_day + timedelta(hours=1),
        status=BatchStatus.PROCESSED,
    )
    pending = await make_batch(
        owner, along_route(3, start=first_day), received_at=first_day + DAY + timedelta(hours=1)
    )
    later = await make_batch(
        owner,
        along_route(3, start=first_day),
        received_at=first_day + 2 * DAY + timedelta(hours=1),
        status=BatchStatus.PROCESSED,
    )
    retention = context(ctx).settings.telemetry_retention_days
    # Retention has passed for the first two days, not for the third.
    now = first_day + 2 * DAY + timedelta(days=retention, hours=3)

    changes = await maintain_partitions(
        session_factory=session_factory, now=now, days_ahead=0, retention_days=retention
    )

    assert LEGACY in changes.dropped  # All of it received before the cut-over.
    assert changes.by_batch == [DEFAULT]  # Only it is left to purge row by row.
    assert partition_name(first_day) in changes.dropped
    assert changes.kept == [partition_name(first_day + DAY)]  # Its batch is still pending.
    left = await names(session_factory)
    assert partition_name(first_day) not in left and LEGACY not in left
    assert {partition_name(first_day + DAY), partition_name(first_day + 2 * DAY)} <= left
    async with session_factory() as session:
        events = dict(
            (
                await session.execute(
                    select(TelemetryEvent.batch_id, func.count()).group_by(TelemetryEvent.batch_id)
                )
            ).all()
        )
    assert events == {pending: 3, later: 3}
    assert done not in events


async def test_the_cron_deletes_batches_past_retention_with_their_events_but_not_pending_ones(
    ctx, session_factory, make_owner, make_batch
) -> None:
    retention = context(ctx).settings.telemetry_retention_days
    old = datetime.now(UTC) - timedelta(days=retention + 2)
    owner = await make_owner()
    await make_batch(  # Given up on: finished, so it goes.
        owner, along_route(2, start=old), received_at=old, status=BatchStatus.FAILED
    )
    pending = await make_batch(owner, along_route(2, start=old), received_at=old)
    recent = await make_batch(owner, along_route(2, start=old), status=BatchStatus.PROCESSED)

    assert await job("purge_telemetry")(ctx) == 1

    async with session_factory() as session:
        left = set(await session.scalars(select(TelemetryBatch.id)))
        events = set(await session.scalars(select(TelemetryEvent.batch_id).distinct()))
    assert left == {pending, recent}
    assert events == {pending, recent}  # The expired batch's events went with it.
    # And it made the days ahead (today is still the legacy partition's, before its cut-over).
    ahead = context(ctx).settings.telemetry_partitions_ahead_days
    last = partition_name(day_start(datetime.now(UTC)) + ahead * DAY)
    assert last in await names(session_factory)
