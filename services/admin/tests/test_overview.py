"""The overview: right numbers on small data, estimates and caps on big data, a cache shared by
replicas, and no statement that reads a whole table."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text, update

from tripline_admin.main import create_admin_app
from tripline_admin.overview import service
from tripline_admin.settings import AdminSettings
from tripline_common.data.models import (
    Alert,
    AlertRule,
    AlertStatus,
    AuthSession,
    BatchStatus,
    Device,
    Job,
    JobStatus,
    TelemetryBatch,
    Trip,
    TripStatus,
    User,
    UserRole,
)


@pytest.fixture
def admin_settings(make_settings) -> AdminSettings:
    # A one-second cache, so that a test can watch it expire.
    return make_settings(AdminSettings, login_rate_window_seconds=3600, overview_cache_seconds=1)


async def make_trip(session_factory, owner: User, device: Device | None = None) -> uuid.UUID:
    start = datetime.now(UTC)
    async with session_factory() as session:
        trip = Trip(
            owner_id=owner.id,
            device_id=device.id if device else None,
            name="Run",
            status=TripStatus.ACTIVE if device else TripStatus.PLANNED,
            origin_lat=52.5,
            origin_lon=13.4,
            destination_lat=52.4,
            destination_lon=13.1,
            planned_start=start,
            planned_arrival=start + timedelta(hours=1),
            started_at=start if device else None,
        )
        session.add(trip)
        await session.commit()
        return trip.id


async def test_the_overview_counts_exactly_on_small_tables(
    client, operator, operator_headers, make_user, make_device, session_factory
) -> None:
    owner = await make_user(email="owner@example.com")
    await make_user(active=False)
    await make_user(UserRole.ADMIN)
    van, _ = await make_device(owner, "van")
    car, _ = await make_device(owner, "car")
    await make_device(owner, "old")
    now = datetime.now(UTC)
    trip = await make_trip(session_factory, owner, van)
    await make_trip(session_factory, owner)  # Planned: not active.
    async with session_factory() as session:
        await session.execute(
            update(Device).where(Device.name == "old").values(revoked_at=now)  # type: ignore[arg-type]
        )
        session.add_all(
            [
                AuthSession(user_id=owner.id, expires_at=now + timedelta(hours=1)),
                AuthSession(user_id=owner.id, expires_at=now - timedelta(hours=1)),
                AuthSession(user_id=owner.id, expires_at=now + timedelta(hours=1), revoked_at=now),
                *(
                    Alert(
                        owner_id=owner.id,
                        trip_id=trip,
                        rule=AlertRule.SPEEDING,
                        status=status,
                        message=f"alert {n}",
                        dedupe_key=f"small-{n}",
                        raised_at=now - timedelta(minutes=n),
                    )
                    for n, status in enumerate(
                        [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED, AlertStatus.OPEN]
                    )
                ),
                *(
                    Job(kind="export_trips", status=status, arq_job_id=f"overview:{n}")
                    for n, status in enumerate(
                        [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED]
                    )
                ),
                *(
                    TelemetryBatch(device_id=car.id, status=status)
                    for status in (BatchStatus.PENDING, BatchStatus.FAILED, BatchStatus.PROCESSED)
                ),
            ]
        )
        await session.commit()

    response = await client.get("/v1/overview", headers=operator_headers)

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {
        "users": 4,  # The operator, the owner, the disabled user, the admin.
        "users_disabled": 1,
        "staff": 2,
        "sessions_live": 2,  # The operator's (its token) and the owner's live one.
        "devices_active": 2,
        "devices_revoked": 1,
        "trips_active": 1,
        "alerts_open": 2,
        "jobs_queued": 2,
        "jobs_running": 1,
        "jobs_failed": 1,
        "batches_pending": 1,
        "batches_failed": 1,
        "estimated": [],
        "at_least": [],
    }
    assert [a["message"] for a in body["recent_alerts"]] == ["alert 0", "alert 2"]


async def test_past_the_cap_big_tables_are_estimated_and_working_sets_read_at_least(
    browser, operator, sign_in, make_user, session_factory
) -> None:
    owner = await make_user()
    trip = await make_trip(session_factory, owner)
    over = service.COUNT_CAP + 200
    async with session_factory() as session:
        # Every fourth a staff member, every fifth disabled.
        await session.execute(
            text(
                """
                INSERT INTO users (id, email, display_name, role, is_active, password_hash)
                SELECT gen_random_uuid(), 'bulk-' || n || '@example.com', 'Bulk',
                       CASE WHEN n % 4 = 0 THEN 'operator' ELSE 'user' END, n % 5 <> 0, 'x'
                FROM generate_series(1, :over) AS n
                """
            ),
            {"over": over},
        )
        await session.execute(
            text(
                """
                INSERT INTO alerts (id, owner_id, trip_id, rule, severity, status, message,
                                    dedupe_key)
                SELECT gen_random_uuid(), :owner, :trip, 'late', 'warning', 'open', 'late',
                       'bulk-' || n
                FROM generate_series(1, :over) AS n
                """
            ),
            {"owner": owner.id, "trip": trip, "over": over},
        )
        # On a table this small ANALYZE reads every row, so the estimates are exact.
        await session.execute(text("ANALYZE users, devices"))
        await session.commit()

    async with session_factory() as session:
        counts = await service.system_counts(session=session)

    # The bulk users, the owner and the operator (staff).
    assert (counts.users, counts.users_disabled, counts.staff) == (
        over + 2,
        over // 5,
        over // 4 + 1,
    )
    assert counts.estimated == ["users", "users_disabled", "staff"]  # Devices: still counted.
    assert counts.alerts_open == service.COUNT_CAP
    assert counts.at_least == ["alerts_open"]

    # The console says which figures are estimates (≈) and which stopped at the cap (+).
    await sign_in(browser, operator)
    page = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", (await browser.get("/console/")).text))
    assert f"Users ≈{over + 2}" in page
    assert f"Open alerts {service.COUNT_CAP}+" in page


async def test_repeated_loads_share_a_cached_answer_across_replicas_until_it_expires(
    admin_settings, app_client, operator_headers, make_user, session_factory
) -> None:
    owner = await make_user()
    trip = await make_trip(session_factory, owner)

    async def raise_alert(key: str) -> None:
        async with session_factory() as session:
            session.add(
                Alert(
                    owner_id=owner.id,
                    trip_id=trip,
                    rule=AlertRule.LATE,
                    message="late",
                    dedupe_key=key,
                )
            )
            await session.commit()

    async with (
        app_client(create_admin_app(admin_settings)) as one,
        app_client(create_admin_app(admin_settings)) as another,
    ):
        first = (await one.get("/v1/overview", headers=operator_headers)).json()
        await raise_alert("cached-1")
        # Within the cache period, another replica answers with the same figures.
        cached = (await another.get("/v1/overview", headers=operator_headers)).json()

        async with Redis.from_url(admin_settings.redis_url) as redis:
            for _ in range(100):  # The key lives one second; wait at most ten for it to go.
                if not await redis.exists(service.CACHE_KEY):
                    break
                await asyncio.sleep(0.1)
        fresh = (await another.get("/v1/overview", headers=operator_headers)).json()

    assert cached == first
    assert first["counts"]["alerts_open"] == 0
    assert fresh["counts"]["alerts_open"] == 1
    assert fresh["as_of"] > first["as_of"]


def scans(node: dict[str, Any], *, under_limit: bool = False) -> Iterator[tuple[dict, bool]]:
    """Every scan node of a plan, with whether a Limit above it bounds what it reads (a Sort,
    Hash or Aggregate between them reads all of its input first)."""
    kind = node["Node Type"]
    if "Scan" in kind and "Relation Name" in node:
        yield node, under_limit
    if kind == "Limit":
        under_limit = True
    elif kind in {"Sort", "Incremental Sort", "Hash", "Aggregate", "WindowAgg"}:
        under_limit = False
    for child in node.get("Plans", []):
        yield from scans(child, under_limit=under_limit)


@pytest.mark.parametrize("statement", service.STATEMENTS.values(), ids=service.STATEMENTS)
async def test_no_statement_of_the_overview_reads_a_whole_table(
    session_factory, statement: str
) -> None:
    """Each scan of a table is narrowed by an index condition, or reads no row it discards and
    stops at a LIMIT. The test tables are tiny, where a sequential scan is rightly cheapest:
    with it switched off, the planner shows whether an index can serve each scan (when none
    can, it still scans sequentially, and the test fails)."""
    async with session_factory() as session:
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        [[plan]] = (
            await session.execute(
                text(f"EXPLAIN (FORMAT JSON) {statement}"),
                {"probe": service.COUNT_CAP + 1, "limit": 8},
            )
        ).all()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    unbounded = [
        f"{node['Node Type']} on {node['Relation Name']}"
        for node, under_limit in scans(plan[0]["Plan"])
        if not node["Relation Name"].startswith("pg_")
        and "Index Cond" not in node
        and "Recheck Cond" not in node
        and ("Filter" in node or not under_limit)
    ]
    assert unbounded == []
