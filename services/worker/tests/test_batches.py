"""Batch processing, run as the worker runs it, on the real database and Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from arq.jobs import deserialize_job
from sqlalchemy import func, select, update
from worker_factories import DESTINATION, WANNSEE, along_route, job, window_aligned

from tripline_common.data.models import (
    Alert,
    AlertRule,
    BatchStatus,
    TelemetryBatch,
    TelemetryEvent,
    Trip,
    TripStatus,
    WebhookDelivery,
)
from tripline_common.messaging import listen_alerts
from tripline_worker.context import context
from tripline_worker.geo import haversine_m

process = job("process_batch")


async def count(session_factory, model, *where) -> int:
    async with session_factory() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def alerts(session_factory, trip_id) -> list[Alert]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(Alert).where(Alert.trip_id == trip_id).order_by(Alert.dedupe_key)
        )
        return list(rows)


async def test_process_batch_marks_it_processed_once(
    ctx, session_factory, make_owner, make_batch, metrics_registry
):
    owner = await make_owner()
    batch_id = await make_batch(owner, along_route(3, start=datetime.now(UTC)))
    assert await process(ctx, str(batch_id), request_id="rid-1") == "processed"
    assert await process(ctx, str(batch_id), request_id="rid-1") == "already_processed"
    async with session_factory() as session:
        batch = await session.get(TelemetryBatch, batch_id)
    assert batch.status is BatchStatus.PROCESSED and batch.attempts == 1
    assert batch.processed_at is not None
    finished = metrics_registry.get_sample_value(
        "tripline_worker_jobs_finished_total", {"function": "process_batch", "outcome": "succeeded"}
    )
    assert finished == 2


async def test_a_batch_pending_across_revision_0009_still_attaches_its_events(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    # Received three hours before revision 0009 added `received_at` to the events, which then
    # read the revision's time: later than their batch's, never in the future.
    owner = await make_owner()
    now = datetime.now(UTC)
    trip_id = await make_trip(owner, started_at=now - timedelta(hours=4))
    fixes = along_route(5, start=now - timedelta(hours=3, minutes=1), every_s=10, fraction=0.1)
    batch_id = await make_batch(owner, fixes, received_at=now - timedelta(hours=3))
    async with session_factory() as session:
        await session.execute(
            update(TelemetryEvent)
            .where(TelemetryEvent.batch_id == batch_id)
            .values(received_at=now - timedelta(minutes=1))
        )
        await session.commit()

    assert await process(ctx, str(batch_id)) == "processed"

    assert await count(session_factory, TelemetryEvent, TelemetryEvent.trip_id == trip_id) == 5


async def test_without_an_active_trip_events_stay_unattached(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    await make_trip(owner, status=TripStatus.PLANNED)
    batch_id = await make_batch(owner, along_route(3, start=datetime.now(UTC), speed_kmh=200))
    assert await process(ctx, str(batch_id)) == "processed"
    assert await count(session_factory, TelemetryEvent, TelemetryEvent.trip_id.is_not(None)) == 0
    assert await count(session_factory, Alert) == 0


async def test_a_batch_moves_its_trip_on(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner)
    start = datetime.now(UTC) - timedelta(minutes=5)
    fixes = along_route(10, start=start, every_s=10, speed_kmh=60, fraction=0.1)
    batch_id = await make_batch(owner, fixes)

    assert await process(ctx, str(batch_id)) == "processed"

    async with session_factory() as session:
        trip = await session.get(Trip, trip_id)
    assert await count(session_factory, TelemetryEvent, TelemetryEvent.trip_id == trip_id) == 10
    assert (trip.last_lat, trip.last_lon) == (fixes[-1]["lat"], fixes[-1]["lon"])
    assert trip.last_seen_at == fixes[-1]["recorded_at"]
    travelled = haversine_m(fixes[0]["lat"], fixes[0]["lon"], fixes[-1]["lat"], fixes[-1]["lon"])
    assert trip.distance_m == pytest.approx(travelled, rel=1e-6)
    # What is left (the rest of the first leg, then the second), at the reported 60 km/h.
    remaining = haversine_m(trip.last_lat, trip.last_lon, *WANNSEE) + haversine_m(
        *WANNSEE, *DESTINATION
    )
    expected_eta = fixes[-1]["recorded_at"] + timedelta(seconds=remaining / (60 / 3.6))
    assert abs((trip.eta - expected_eta).total_seconds()) < 5
    assert await count(session_factory, Alert) == 0


async def test_an_older_batch_arriving_late_does_not_rewind_the_trip(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner)
    start = datetime.now(UTC) - timedelta(minutes=10)
    fixes = along_route(20, start=start, fraction=0.2)
    newer = await make_batch(owner, fixes[10:])
    older = await make_batch(owner, fixes[:10])
    await process(ctx, str(newer))
    async with session_factory() as session:
        before = await session.get(Trip, trip_id)
        before = (before.last_seen_at, before.distance_m, before.last_lat)
    await process(ctx, str(older))
    async with session_factory() as session:
        trip = await session.get(Trip, trip_id)
    assert (trip.last_seen_at, trip.distance_m, trip.last_lat) == before
    assert await count(session_factory, TelemetryEvent, TelemetryEvent.trip_id == trip_id) == 20


async def test_speeding_raises_one_alert_per_window_from_its_first_fix(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=80)
    window = context(ctx).settings.alert_window_seconds
    epoch = int(datetime.now(UTC).timestamp()) // window * window - 3 * window
    start = datetime.fromtimestamp(epoch, UTC)
    first = await make_batch(owner, along_route(5, start=start, speed_kmh=95), request_id="r-1")
    same_window = await make_batch(
        owner, along_route(5, start=start + timedelta(seconds=60), speed_kmh=130)
    )
    next_window = await make_batch(
        owner, along_route(5, start=start + timedelta(seconds=window), speed_kmh=90)
    )
    for batch_id in (first, same_window, next_window):
        assert await process(ctx, str(batch_id)) == "processed"

    raised = await alerts(session_factory, trip_id)
    assert [a.dedupe_key for a in raised] == [
        f"speeding:{trip_id}:{epoch}",
        f"speeding:{trip_id}:{epoch + window}",
    ]
    first_alert = raised[0]
    assert first_alert.rule is AlertRule.SPEEDING
    assert first_alert.request_id == "r-1"
    assert first_alert.details["speed_kmh"] == 95 and first_alert.details["limit_kmh"] == 80
    assert first_alert.details["fixes_over_limit"] == 5
    assert first_alert.device_id == owner.device_id and first_alert.owner_id == owner.user_id


async def test_a_speeding_burst_crossing_a_multiple_of_the_window_raises_one_alert(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    """Two batches of one burst, 100 s before and 50 s after a clock boundary: one alert (a
    window fixed to the clock raised two)."""
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=80)
    window = context(ctx).settings.alert_window_seconds
    boundary = int(datetime.now(UTC).timestamp()) // window * window - 2 * window
    start = datetime.fromtimestamp(boundary - 100, UTC)
    before = await make_batch(owner, along_route(5, start=start, speed_kmh=95))
    after = await make_batch(
        owner, along_route(5, start=start + timedelta(seconds=150), speed_kmh=120)
    )
    for batch_id in (before, after):
        assert await process(ctx, str(batch_id)) == "processed"

    [alert] = await alerts(session_factory, trip_id)
    assert alert.dedupe_key == f"speeding:{trip_id}:{boundary - 100}"
    assert alert.observed_at == start
    assert alert.details["speed_kmh"] == 95  # The second batch's fixes belong to this alert.


async def test_a_speeding_alert_of_the_previous_release_without_observed_at_still_holds_its_window(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    """The previous release (before migration 0007) serves on beside this one during an upgrade
    and again after a rollback; its alerts have no `observed_at`, only `details.first_at`."""
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=80)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    async with session_factory() as session:
        session.add(
            Alert(
                owner_id=owner.user_id,
                trip_id=trip_id,
                device_id=owner.device_id,
                rule=AlertRule.SPEEDING,
                message="95 km/h, over the 80 km/h limit.",
                details={"speed_kmh": 95, "first_at": start.isoformat()},
                dedupe_key=f"speeding:{trip_id}:{int(start.timestamp()) // 300 * 300}",
            )
        )
        await session.commit()
    same_burst = await make_batch(
        owner, along_route(3, start=start + timedelta(seconds=60), speed_kmh=99)
    )
    assert await process(ctx, str(same_burst)) == "processed"

    [alert] = await alerts(session_factory, trip_id)
    assert alert.observed_at is None


async def test_a_new_speeding_episode_a_window_after_the_first_raises_a_second_alert(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=80)
    window = context(ctx).settings.alert_window_seconds
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3 * window)
    first = await make_batch(owner, along_route(2, start=start, speed_kmh=95))
    # A hair inside the window of the first alert, then a second episode exactly a window on.
    inside = await make_batch(
        owner, [along_route(1, start=start + timedelta(seconds=window - 0.001), speed_kmh=99)[0]]
    )
    second = await make_batch(
        owner, along_route(2, start=start + timedelta(seconds=window), speed_kmh=99)
    )
    for batch_id in (first, inside, second):
        assert await process(ctx, str(batch_id)) == "processed"

    raised = await alerts(session_factory, trip_id)
    assert [alert.observed_at for alert in raised] == [
        start,
        start + timedelta(seconds=window),
    ]


async def test_processing_a_batch_again_changes_nothing(
    ctx, session_factory, make_owner, make_trip, make_batch, make_endpoint
) -> None:
    """Even past the status check (a crash between commit and ARQ's bookkeeping, a double
    run): the progress ignores fixes it has seen, the alerts and deliveries are unique."""
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=50, corridor_m=100)
    await make_endpoint(owner, "http://127.0.0.1:9/hook")
    fixes = along_route(8, start=window_aligned(), speed_kmh=70)
    fixes[-1].update(lat=52.60, lon=13.60)  # far off the route
    batch_id = await make_batch(owner, fixes)
    await process(ctx, str(batch_id))

    async def snapshot():
        async with session_factory() as session:
            trip = await session.get(Trip, trip_id, populate_existing=True)
            return (
                trip.last_seen_at,
                trip.distance_m,
                trip.eta,
                sorted(a.dedupe_key for a in await alerts(session_factory, trip_id)),
                await count(session_factory, WebhookDelivery),
                await count(session_factory, TelemetryEvent, TelemetryEvent.trip_id == trip_id),
            )

    first = await snapshot()
    assert {key.split(":")[0] for key in first[3]} == {"speeding", "corridor"}
    assert first[4] == 2
    async with session_factory() as session:
        await session.execute(
            update(TelemetryBatch)
            .where(TelemetryBatch.id == batch_id)
            .values(status=BatchStatus.PENDING)
        )
        await session.commit()
    assert await process(ctx, str(batch_id)) == "processed"
    assert await snapshot() == first


async def test_leaving_the_corridor_raises_a_corridor_alert(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner, corridor_m=500, speed_limit_kmh=None)
    fixes = along_route(3, start=datetime.now(UTC) - timedelta(minutes=1))
    # About 1.1 km north of the origin, with a 50 m accuracy radius: ~1 km outside.
    fixes.append({**fixes[-1], "lat": 52.5300, "lon": 13.4050, "accuracy_m": 50.0})
    fixes[-1]["recorded_at"] += timedelta(seconds=10)
    await process(ctx, str(await make_batch(owner, fixes)))
    [alert] = await alerts(session_factory, trip_id)
    assert alert.rule is AlertRule.CORRIDOR
    assert 1000 < alert.details["off_route_m"] < 1200
    assert alert.details["fixes_outside"] == 1


async def test_a_trip_that_cannot_make_its_arrival_raises_late_once(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    now = datetime.now(UTC)
    trip_id = await make_trip(
        owner, planned_arrival=now + timedelta(minutes=5), speed_limit_kmh=None
    )
    # ~25 km to go at 30 km/h: about 50 minutes.
    for minute in (3, 2):
        fixes = along_route(3, start=now - timedelta(minutes=minute), speed_kmh=30, fraction=0.05)
        await process(ctx, str(await make_batch(owner, fixes)))
    [alert] = await alerts(session_factory, trip_id)
    assert alert.rule is AlertRule.LATE and alert.dedupe_key == f"late:{trip_id}"
    assert alert.details["late_by_seconds"] > 30 * 60


async def test_new_alerts_are_published_with_the_request_id(
    ctx, make_owner, make_trip, make_batch
) -> None:
    owner = await make_owner()
    trip_id = await make_trip(owner, speed_limit_kmh=50)
    batch_id = await make_batch(
        owner, along_route(2, start=window_aligned(), speed_kmh=99), request_id="pub-rid"
    )
    listener = listen_alerts(context(ctx).redis, owner_id=owner.user_id)
    received = asyncio.ensure_future(anext(listener))
    await asyncio.sleep(0.2)  # Subscribed before the alert is raised.
    await process(ctx, str(batch_id))
    event = await asyncio.wait_for(received, 5)
    await listener.aclose()
    assert event.type == "alert.raised"
    assert event.alert.trip_id == trip_id and event.alert.rule == "speeding"
    assert event.alert.request_id == "pub-rid"


async def test_each_new_alert_gets_one_delivery_per_active_endpoint(
    ctx, session_factory, make_owner, make_trip, make_batch, make_endpoint
) -> None:
    owner = await make_owner()
    await make_trip(owner, speed_limit_kmh=50)
    await make_endpoint(owner, "http://127.0.0.1:9/a")
    await make_endpoint(owner, "http://127.0.0.1:9/b")
    await make_endpoint(owner, "http://127.0.0.1:9/off", active=False)
    batch_id = await make_batch(
        owner, along_route(2, start=window_aligned(), speed_kmh=99), request_id="hook-rid"
    )
    await process(ctx, str(batch_id))
    async with session_factory() as session:
        deliveries = list(await session.scalars(select(WebhookDelivery)))
    assert len(deliveries) == 2
    redis = context(ctx).redis
    for delivery in deliveries:
        queued = deserialize_job(await redis.get(f"arq:job:deliver_webhook:{delivery.id}"))
        assert queued.function == "deliver_webhook"
        assert queued.args == (str(delivery.id),)
        assert queued.kwargs == {"request_id": "hook-rid"}
        assert delivery.request_id == "hook-rid"


async def test_a_poison_batch_is_given_up_after_its_attempts(
    ctx, session_factory, make_owner, make_batch
) -> None:
    owner = await make_owner()
    max_attempts = context(ctx).settings.max_batch_attempts
    # Every earlier attempt died before it could record anything (say, the worker was killed).
    batch_id = await make_batch(owner, [], attempts=max_attempts)
    assert await process(ctx, str(batch_id)) == "gave_up"
    async with session_factory() as session:
        batch = await session.get(TelemetryBatch, batch_id)
    assert batch.status is BatchStatus.FAILED
    assert f"after {max_attempts} processing attempts" in batch.error


async def test_sweeper_drops_a_stale_arq_result_that_would_block_the_batch(
    ctx, make_owner, make_batch
) -> None:
    """Redis restarted empty between a worker marking the job in progress and reading it: ARQ
    recorded it as an expired failure, kept under the job's ID, which refused the re-enqueue
    for `keep_result` seconds while the batch stayed pending."""
    owner = await make_owner()
    batch = await make_batch(owner, [], received_at=datetime.now(UTC) - timedelta(minutes=5))
    redis = context(ctx).redis
    job_id = f"process_batch:{batch}"
    await redis.set(f"arq:result:{job_id}", b"expired", ex=300)

    assert await job("requeue_stuck_batches")(ctx) == 1

    assert await redis.exists(f"arq:result:{job_id}") == 0
    assert deserialize_job(await redis.get(f"arq:job:{job_id}")).args == (str(batch),)


async def test_the_sweeper_leaves_a_queued_or_running_batch_alone(
    ctx, make_owner, make_batch
) -> None:
    owner = await make_owner()
    batch = await make_batch(owner, [], received_at=datetime.now(UTC) - timedelta(minutes=5))
    redis = context(ctx).redis
    job_id = f"process_batch:{batch}"
    await redis.set(f"arq:in-progress:{job_id}", b"1", ex=300)
    await redis.set(f"arq:result:{job_id}", b"from an older run", ex=300)

    assert await job("requeue_stuck_batches")(ctx) == 0

    assert await redis.get(f"arq:result:{job_id}") == b"from an older run"
    assert await redis.exists(f"arq:job:{job_id}") == 0


async def test_sweeper_requeues_only_old_pending_batches(ctx, make_owner, make_batch) -> None:
    owner = await make_owner()
    old = await make_batch(
        owner, [], request_id="rid-old", received_at=datetime.now(UTC) - timedelta(minutes=5)
    )
    await make_batch(owner, [], received_at=datetime.now(UTC) - timedelta(seconds=1))
    requeue = job("requeue_stuck_batches")
    assert await requeue(ctx) == 1
    assert await requeue(ctx) == 0  # Same deterministic job ID: not enqueued twice.
    redis = context(ctx).redis
    payload = deserialize_job(await redis.get(f"arq:job:process_batch:{old}"))
    assert payload.args == (str(old),)
    assert payload.kwargs == {"request_id": "rid-old"}  # The original story continues.
