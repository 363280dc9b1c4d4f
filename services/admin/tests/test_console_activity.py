"""The overview's charts: events accepted and processed per second by slot, alerts per hour,
the queue's depth sampled into a bounded Redis set; the charts' fragment that console.js
reloads; and no statement of the charts or the trip page that reads more than its window."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select, text, update

from tripline_admin.activity import service as activity
from tripline_admin.console.security import REFRESH_HEADER, cookie_name, sign
from tripline_admin.queues import history
from tripline_admin.queues.metrics import QueueMetrics, QueueMonitor
from tripline_admin.trips import service as trips
from tripline_common.data.models import (
    Alert,
    AlertRule,
    AuthSession,
    BatchStatus,
    Device,
    TelemetryBatch,
    Trip,
)
from tripline_common.messaging import create_redis

# A moment 5 s into a 15 s slot: the window is the 60 slots before 12:30:00.
NOW = datetime(2026, 12, 7, 12, 30, 5, tzinfo=UTC)
WINDOW_START = datetime(2026, 12, 7, 12, 15, tzinfo=UTC)


@pytest.fixture
async def redis(admin_settings):
    client = create_redis(admin_settings)
    yield client
    await client.delete(history.history_key(admin_settings.arq_queue_name), activity.CACHE_KEY)
    await client.aclose()


def slot_index(moment: datetime) -> int:
    return int((moment - WINDOW_START).total_seconds()) // history.STEP_SECONDS


async def test_events_accepted_and_processed_are_per_second_in_15_second_slots(
    session_factory, redis, admin_settings, device_with_key
) -> None:
    device: Device = device_with_key[0]
    t = WINDOW_START + timedelta(minutes=5)
    batches = [
        # Received in slot t (pending, processed or failed alike: all were accepted).
        (BatchStatus.PENDING, 30, t + timedelta(seconds=1), None),
        (BatchStatus.PROCESSED, 15, t + timedelta(seconds=14), t + timedelta(seconds=20)),
        (BatchStatus.FAILED, 15, t + timedelta(seconds=3), t + timedelta(seconds=25)),
        # Received before the window, processed in it: processed, not accepted, here.
        (BatchStatus.PROCESSED, 45, WINDOW_START - timedelta(minutes=1), WINDOW_START),
        # Too old, and in the slot under way: in neither.
        (BatchStatus.PROCESSED, 99, WINDOW_START - timedelta(hours=2), WINDOW_START),
        (BatchStatus.PROCESSED, 99, NOW - timedelta(seconds=2), NOW),
    ]
    async with session_factory() as session:
        for status, events, received_at, processed_at in batches:
            session.add(
                TelemetryBatch(
                    device_id=device.id,
                    status=status,
                    event_count=events,
                    received_at=received_at,
                    processed_at=processed_at,
                )
            )
        await session.commit()
        figures = await activity.read_activity(
            session=session, redis=redis, queue_name=admin_settings.arq_queue_name, now=NOW
        )

    accepted = figures.accepted_per_second
    processed = figures.processed_per_second
    assert accepted.start == WINDOW_START and accepted.step_seconds == 15
    assert len(accepted.values) == len(processed.values) == 60
    assert {i: v for i, v in enumerate(accepted.values) if v} == {slot_index(t): 60 / 15}
    assert {i: v for i, v in enumerate(processed.values) if v} == {
        0: 45 / 15,  # processed at the window's start
        slot_index(t) + 1: 15 / 15,  # at t + 20 s; the failed batch is not "processed"
    }


async def test_alerts_are_counted_per_hour_over_the_last_day_this_hour_so_far(
    session_factory, redis, admin_settings, device_with_key
) -> None:
    device: Device = device_with_key[0]
    async with session_factory() as session:
        trip = Trip(
            owner_id=device.owner_id,
            name="Run",
            origin_lat=52.5,
            origin_lon=13.4,
            destination_lat=52.4,
            destination_lon=13.1,
            planned_start=NOW - timedelta(days=2),
            planned_arrival=NOW,
        )
        session.add(trip)
        await session.flush()
        for ago in (
            timedelta(minutes=1),
            timedelta(minutes=40),
            timedelta(hours=5),
            timedelta(hours=30),
        ):
            session.add(
                Alert(
                    owner_id=device.owner_id,
                    trip_id=trip.id,
                    rule=AlertRule.LATE,
                    message="late",
                    dedupe_key=uuid.uuid4().hex,
                    raised_at=NOW - ago,
                )
            )
        await session.commit()
        figures = await activity.read_activity(
            session=session, redis=redis, queue_name=admin_settings.arq_queue_name, now=NOW
        )

    alerts = figures.alerts_per_hour
    assert alerts.step_seconds == 3600 and len(alerts.values) == 24
    assert alerts.start == datetime(2026, 12, 6, 13, 0, tzinfo=UTC)
    # 12:29 this hour; 11:50 the hour before; 07:30 five hours back; 30 h ago is out.
    assert {i: v for i, v in enumerate(alerts.values) if v} == {23: 1, 22: 1, 18: 1}


async def test_the_queue_depth_is_the_largest_sample_of_each_slot_and_gaps_stay_empty(
    session_factory, redis, admin_settings
) -> None:
    queue = admin_settings.arq_queue_name
    at = WINDOW_START.timestamp()
    await history.record_depth(redis, queue, depth=4, at=at + 2)
    await history.record_depth(redis, queue, depth=7, at=at + 3)  # Another replica, same slot.
    await history.record_depth(redis, queue, depth=2, at=at + 31)

    async with session_factory() as session:
        figures = await activity.read_activity(
            session=session, redis=redis, queue_name=queue, now=NOW
        )

    assert figures.queue_depth.values[:3] == [7, None, 2]
    assert all(v is None for v in figures.queue_depth.values[3:])


async def test_the_depth_history_keeps_only_its_window(redis, admin_settings) -> None:
    queue = admin_settings.arq_queue_name
    start = NOW.timestamp() - 3 * history.WINDOW_SECONDS
    for n in range(4 * history.WINDOW_SECONDS // history.STEP_SECONDS):
        await history.record_depth(redis, queue, depth=n, at=start + n * history.STEP_SECONDS)

    size = await redis.zcard(history.history_key(queue))
    assert size == history.WINDOW_SECONDS // history.STEP_SECONDS + 1
    assert 0 < await redis.ttl(history.history_key(queue)) <= history.WINDOW_SECONDS


async def test_the_queue_monitor_samples_the_depth_once_per_slot(redis, admin_settings) -> None:
    queue = admin_settings.arq_queue_name
    await redis.enqueue_job("noop", _job_id="waiting-1", _queue_name=queue)
    await redis.enqueue_job("noop", _job_id="waiting-2", _queue_name=queue, _defer_by=600)
    monitor = QueueMonitor(QueueMetrics(CollectorRegistry(), queue), redis, queue, interval=60)
    try:
        await monitor.refresh()
        await redis.enqueue_job("noop", _job_id="waiting-3", _queue_name=queue)
        await monitor.refresh()  # The same slot (unless it just turned): no second sample.
        samples = await redis.zrange(history.history_key(queue), 0, -1)
    finally:
        await redis.delete(queue)
    assert len(samples) in (1, 2)
    assert samples[0].decode().endswith(":2")


async def test_the_charts_fragment_draws_four_series_for_a_signed_in_operator(
    browser, operator, sign_in
) -> None:
    assert (await browser.get("/console/activity")).status_code == 303
    await sign_in(browser, operator)

    response = await browser.get("/console/activity")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    html = response.text
    assert html.count('<svg class="chart-svg"') == 3
    for series in ("series-accepted", "series-processed", "series-queue"):
        assert f'<g class="series {series}">' in html
    assert html.count('<rect class="chart-bar"') == 24
    overview = (await browser.get("/console/")).text
    assert 'data-live="/console/activity"' in overview and html.split("\n")[2] in overview


async def test_a_refresh_of_the_charts_leaves_a_flash_message_for_the_page_it_was_meant_for(
    browser, operator, sign_in, admin_settings
) -> None:
    """A form posted in another tab redirects to a page that shows its message; a refresh of
    the charts that comes in between must not take that message."""
    await sign_in(browser, operator)
    browser.cookies.set(
        cookie_name(admin_settings, "flash"),
        sign(admin_settings, "flash", [["success", "Queued again."]]),
    )

    refreshed = await browser.get("/console/activity", headers={REFRESH_HEADER: "1"})
    page = await browser.get("/console/jobs")

    assert "set-cookie" not in refreshed.headers
    assert "Queued again." in page.text


async def test_a_refresh_of_the_charts_does_not_keep_an_idle_session_alive(
    browser, operator, sign_in, session_factory
) -> None:
    console = await sign_in(browser, operator)
    earlier = datetime.now(UTC) - timedelta(minutes=10)
    async with session_factory() as session:
        await session.execute(
            update(AuthSession)
            .where(AuthSession.id == console.session_id)
            .values(last_seen_at=earlier)
        )
        await session.commit()

    refreshed = await browser.get("/console/activity", headers={REFRESH_HEADER: "1"})
    async with session_factory() as session:
        after_refresh = await session.scalar(
            select(AuthSession.last_seen_at).where(AuthSession.id == console.session_id)
        )
    viewed = await browser.get("/console/activity")
    async with session_factory() as session:
        after_view = await session.scalar(
            select(AuthSession.last_seen_at).where(AuthSession.id == console.session_id)
        )

    assert refreshed.status_code == viewed.status_code == 200
    assert after_refresh == earlier
    assert after_view is not None and after_view > earlier


# --- Every statement reads through an index, within its window -------------------------------

TRIP = uuid.UUID("0b6e7c1e-2f4a-4d0e-9d53-5f1f3c7a9e21")
PARAMETERS: dict[str, Any] = {
    "since": WINDOW_START,
    "until": NOW,
    "received_since": WINDOW_START - timedelta(minutes=15),
    "trip_id": TRIP,
    "owner_id": TRIP,
    "limit": 10,
    "slots": 10,
}
# Each statement, with the table it reads and what must narrow every scan of it.
STATEMENTS = [
    ("accepted", activity.ACCEPTED, "telemetry_batches", "received_at"),
    ("processed", activity.PROCESSED, "telemetry_batches", "received_at"),
    ("alerts", activity.ALERTS, "alerts", "raised_at"),
    ("first_fixes", trips.FIRST_FIXES, "telemetry_events", "trip_id"),
    ("spread_fixes", trips.SPREAD_FIXES, "telemetry_events", "trip_id"),
    ("trip_alerts", trips.TRIP_ALERTS, "alerts", "trip_id"),
    ("user_trips", trips.USER_TRIPS, "trips", "owner_id"),
]


def scan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if "Relation Name" in node else []
    for child in node.get("Plans", []):
        found += scan_nodes(child)
    return found


def test_every_statement_of_the_charts_and_the_trip_page_is_checked_here() -> None:
    assert {name for name, *_ in STATEMENTS} == {*activity.STATEMENTS, *trips.STATEMENTS}


@pytest.mark.parametrize(
    ("sql", "table", "column"),
    [row[1:] for row in STATEMENTS],
    ids=[row[0] for row in STATEMENTS],
)
async def test_each_statement_reads_its_rows_through_an_index_on_its_window(
    session_factory, sql: str, table: str, column: str
) -> None:
    """With sequential scans and sorts priced out (the test tables are tiny, where they are
    rightly cheapest), every scan of the table is an index scan whose condition is the window
    (or the trip, or the owner): none reads the table, whatever its size, and a page comes in
    the index's order (each day partition of `telemetry_events` has the trip index)."""
    async with session_factory() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        await session.execute(text("SET LOCAL enable_sort = off"))
        [[plan]] = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"), PARAMETERS)).all()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    scans = [
        node
        for node in scan_nodes(plan[0]["Plan"])
        if node["Relation Name"] == table or node["Relation Name"].startswith(f"{table}_")
    ]
    assert scans, plan
    for node in scans:
        assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
        assert column in node.get("Index Cond", ""), node
