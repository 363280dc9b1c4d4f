"""The worker's periodic jobs: lost signal, retention, session cleanup, and their schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from worker_factories import along_route, job, with_resources

from tripline_common.data.models import (
    Alert,
    AlertRule,
    AuthSession,
    BatchStatus,
    TelemetryBatch,
    TelemetryEvent,
    TripStatus,
    UsedRefreshToken,
    WebhookDelivery,
)
from tripline_worker.alerts.lost_signal import unalerted_silent_trips
from tripline_worker.context import context
from tripline_worker.runner import cron_jobs, every
from tripline_worker.settings import WorkerServiceSettings


async def test_a_silent_active_trip_raises_lost_signal_once_per_silence(
    ctx, session_factory, make_owner, make_trip, make_batch
) -> None:
    now = datetime.now(UTC)
    silent_owner, chatty_owner, idle_owner = await make_owner(), await make_owner(), None
    silent = await make_trip(silent_owner, last_seen_at=now - timedelta(minutes=20))
    await make_trip(chatty_owner, last_seen_at=now - timedelta(seconds=30))
    idle_owner = await make_owner()
    await make_trip(idle_owner, status=TripStatus.PLANNED)
    check = job("check_lost_signal")

    assert await check(ctx) == 1
    assert await check(ctx) == 0  # The same silence: no second alert.
    async with session_factory() as session:
        [alert] = list(await session.scalars(select(Alert)))
    assert alert.trip_id == silent and alert.rule is AlertRule.LOST_SIGNAL
    assert alert.details["silent_seconds"] >= 20 * 60
    assert alert.request_id  # The cron run's own correlation ID.

    # The device comes back, then goes silent again: a new silence, a new alert.
    fixes = along_route(1, start=now - timedelta(minutes=15))
    await job("process_batch")(ctx, str(await make_batch(silent_owner, fixes)))
    assert await check(ctx) == 1


async def test_every_silent_trip_is_alerted_once_when_there_are_more_than_one_run_takes(
    ctx, worker_settings, session_factory, make_owner, make_trip, make_endpoint
) -> None:
    ctx = with_resources(ctx, settings=worker_settings(lost_signal_limit=3))
    now = datetime.now(UTC)
    owners = [await make_owner() for _ in range(8)]
    # Trip n has been silent for 20 + n minutes: the longest silent are alerted first.
    trips = [
        await make_trip(owner, last_seen_at=now - timedelta(minutes=20 + n))
        for n, owner in enumerate(owners)
    ]
    await make_endpoint(owners[0], "https://hooks.example.com/first")
    await make_endpoint(owners[7], "https://hooks.example.com/last")
    check = job("check_lost_signal")

    assert [await check(ctx) for _ in range(4)] == [3, 3, 2, 0]

    async with session_factory() as session:
        alerts = list(await session.execute(select(Alert.trip_id, Alert.raised_at)))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        # Nothing is left for a further run to insert again.
        left = await unalerted_silent_trips(
            session=session,
            silent_for=timedelta(minutes=10),
            limit=100,
            now=datetime.now(UTC),
        )
    assert sorted(trip for trip, _ in alerts) == sorted(trips)  # Each exactly once.
    first_run = min(raised for _, raised in alerts)
    assert {trip for trip, raised in alerts if raised == first_run} == set(trips[-3:])
    assert deliveries == 2  # Each owner's endpoint got its own alert, once.
    assert left == []


async def test_retention_deletes_old_finished_telemetry_only(
    ctx, session_factory, make_owner, make_batch
) -> None:
    owner = await make_owner()
    days = context(ctx).settings.telemetry_retention_days
    old = datetime.now(UTC) - timedelta(days=days + 1)
    fixes = along_route(3, start=old)
    expired = await make_batch(owner, fixes, received_at=old, status=BatchStatus.PROCESSED)
    pending = await make_batch(owner, fixes, received_at=old)
    recent = await make_batch(owner, fixes, status=BatchStatus.PROCESSED)

    assert await job("purge_telemetry")(ctx) == 1

    async with session_factory() as session:
        left = set(await session.scalars(select(TelemetryBatch.id)))
        events = await session.scalar(
            select(func.count()).where(TelemetryEvent.batch_id == expired)
        )
    assert left == {pending, recent}
    assert events == 0  # Cascaded with the batch.


async def test_retention_works_in_bounded_chunks(
    ctx, worker_settings, session_factory, make_owner, make_batch
) -> None:
    ctx = with_resources(ctx, settings=worker_settings(cleanup_batch_size=2))
    owner = await make_owner()
    old = datetime.now(UTC) - timedelta(days=400)
    for _ in range(5):
        await make_batch(owner, [], received_at=old, status=BatchStatus.PROCESSED)
    assert await job("purge_telemetry")(ctx) == 5


async def test_sessions_are_deleted_after_expiry_plus_grace(
    ctx, session_factory, make_owner
) -> None:
    owner = await make_owner()
    grace = context(ctx).settings.session_cleanup_grace_days
    now = datetime.now(UTC)
    async with session_factory() as session:
        long_gone = AuthSession(user_id=owner.user_id, expires_at=now - timedelta(days=grace + 1))
        in_grace = AuthSession(user_id=owner.user_id, expires_at=now - timedelta(days=1))
        live = AuthSession(user_id=owner.user_id, expires_at=now + timedelta(days=1))
        session.add_all([long_gone, in_grace, live])
        await session.flush()
        # Spent refresh tokens (reuse detection) go with their session.
        session.add_all(
            UsedRefreshToken(token_hash=f"{n:064x}", session_id=s.id)
            for n, s in enumerate([long_gone, live])
        )
        await session.commit()
        kept = {in_grace.id, live.id}
    assert await job("purge_sessions")(ctx) == 1
    async with session_factory() as session:
        assert set(await session.scalars(select(AuthSession.id))) == kept
        assert set(await session.scalars(select(UsedRefreshToken.session_id))) == {live.id}


@pytest.mark.parametrize(
    ("seconds", "offset", "expected"),
    [
        (30, 0, {"second": {0, 30}}),
        (1, 0, {"second": set(range(60))}),
        (20, 3, {"second": {3, 23, 43}}),
        (300, 5, {"minute": {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}, "second": {5}}),
    ],
)
def test_every_turns_an_interval_into_cron_fields(seconds, offset, expected) -> None:
    assert every(seconds, offset=offset) == expected


def test_an_interval_that_does_not_divide_the_clock_is_refused() -> None:
    with pytest.raises(ValueError, match="not a divisor"):
        every(45)


def test_every_cron_runs_within_the_job_timeout() -> None:
    settings = WorkerServiceSettings(_env_file=None)  # type: ignore[call-arg]
    crons = cron_jobs(settings)
    assert {c.name for c in crons} == {
        "requeue_stuck_batches",
        "requeue_stuck_deliveries",
        "requeue_stuck_jobs",
        "check_lost_signal",
        "purge_telemetry",
        "purge_sessions",
    }
    # No own timeout: ARQ's in-progress marker (job_timeout + 10 s) bounds recovery after a
    # worker dies only if no function has a longer one.
    assert all(c.timeout_s is None for c in crons)
