"""The overview: counts across the system, queue health, open alerts and recent failures.

Its cost does not grow with the data. No statement reads more than `COUNT_CAP + 1` rows of a
table: the working sets (live sessions, active trips, open alerts, jobs and batches by status)
are counted through an index up to the cap, a count at the cap meaning "at least"; users and
devices are counted when their table holds at most the cap, and estimated from the planner's
statistics (`pg_class.reltuples` and `pg_stats`, as of the last ANALYZE) when it holds more.
The answer is cached in Redis for `OVERVIEW_CACHE_SECONDS`, so every replica serves the same
figures and only one computation is needed per period however many operators look.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_admin.jobs.service import recent_failures
from tripline_admin.overview.schemas import COUNT_CAP, Counts, Overview, RecentAlert
from tripline_admin.queues.service import queue_health

CACHE_KEY = "tripline:admin:overview"

# The working sets, each found through an index, counted up to the cap (`:probe` is the cap
# plus one, so that a count past the cap shows). The indexes: ix_auth_sessions_expires_at;
# uq_trips_one_active_per_device (partial, on active trips); ix_alerts_open_raised_at (partial,
# on open alerts); ix_jobs_status_created_at; ix_telemetry_batches_status_received_at.
WORKING_SET_COUNTS = """
    SELECT
        (SELECT count(*) FROM (SELECT FROM auth_sessions
            WHERE expires_at > now() AND revoked_at IS NULL LIMIT :probe) AS s) AS sessions_live,
        (SELECT count(*) FROM (SELECT FROM trips
            WHERE status = 'active' LIMIT :probe) AS s) AS trips_active,
        (SELECT count(*) FROM (SELECT FROM alerts
            WHERE status = 'open' LIMIT :probe) AS s) AS alerts_open,
        (SELECT count(*) FROM (SELECT FROM jobs
            WHERE status = 'queued' LIMIT :probe) AS s) AS jobs_queued,
        (SELECT count(*) FROM (SELECT FROM jobs
            WHERE status = 'running' LIMIT :probe) AS s) AS jobs_running,
        (SELECT count(*) FROM (SELECT FROM jobs
            WHERE status = 'failed' LIMIT :probe) AS s) AS jobs_failed,
        (SELECT count(*) FROM (SELECT FROM telemetry_batches
            WHERE status = 'pending' LIMIT :probe) AS s) AS batches_pending,
        (SELECT count(*) FROM (SELECT FROM telemetry_batches
            WHERE status = 'failed' LIMIT :probe) AS s) AS batches_failed
"""

# Users and devices: counted on at most `COUNT_CAP + 1` of their rows, which is all of them
# when the table is small (`users` then equals the table's size; at the cap it is estimated).
TABLE_COUNTS = """
    WITH some_users AS MATERIALIZED (SELECT is_active, role FROM users LIMIT :probe),
         some_devices AS MATERIALIZED (SELECT revoked_at FROM devices LIMIT :probe)
    SELECT
        (SELECT count(*) FROM some_users) AS users,
        (SELECT count(*) FROM some_users WHERE NOT is_active) AS users_disabled,
        (SELECT count(*) FROM some_users WHERE role <> 'user') AS staff,
        (SELECT count(*) FROM some_devices) AS devices,
        (SELECT count(*) FROM some_devices WHERE revoked_at IS NULL) AS devices_active,
        (SELECT count(*) FROM some_devices WHERE revoked_at IS NOT NULL) AS devices_revoked
"""

# The planner's statistics, as of the last ANALYZE (autovacuum keeps them recent): each table's
# row count, and the share of NULLs and of each common value of the columns counted on (the
# most-common-values list holds every value of a column with few distinct ones).
TABLE_SIZES = """
    SELECT relname AS table_name, reltuples AS row_count
    FROM pg_class
    WHERE oid IN ('users'::regclass, 'devices'::regclass)
"""
COLUMN_SHARES = """
    SELECT tablename AS table_name, attname AS column_name, null_frac,
           most_common_vals::text::text[] AS common_values, most_common_freqs AS common_shares
    FROM pg_stats
    WHERE schemaname = current_schema()
      AND (tablename, attname) IN (('users', 'is_active'), ('users', 'role'),
                                   ('devices', 'revoked_at'))
"""

# A page of the open alerts, newest first: served by ix_alerts_open_raised_at, alerts
# (raised_at DESC, id) WHERE status = 'open', it reads `:limit` entries. Ties go by id ascending
# so that the users' own lists (raised_at DESC, id DESC, on their owner's indexes) never match it.
OPEN_ALERTS = """
    SELECT alert.id, alert.rule, alert.severity, alert.message, owner.email AS owner_email,
           alert.trip_id, alert.request_id, alert.raised_at
    FROM alerts AS alert
    JOIN users AS owner ON owner.id = alert.owner_id
    WHERE alert.status = 'open'
    ORDER BY alert.raised_at DESC, alert.id
    LIMIT :limit
"""

STATEMENTS = {
    "table_counts": TABLE_COUNTS,
    "working_set_counts": WORKING_SET_COUNTS,
    "table_sizes": TABLE_SIZES,
    "column_shares": COLUMN_SHARES,
    "open_alerts": OPEN_ALERTS,
}
"""Every statement the overview issues (besides the failures', `jobs.service`)."""

_PROBE = {"probe": COUNT_CAP + 1}
# The counts taken on each table's rows, estimated when the table is over the cap.
_TABLE_COUNTS = {
    "users": ("users", "users_disabled", "staff"),
    "devices": ("devices_active", "devices_revoked"),
}


class _Statistics:
    """The planner's statistics of the tables counted on (`TABLE_SIZES`, `COLUMN_SHARES`)."""

    def __init__(self, sizes: Iterable[Any], shares: Iterable[Any]) -> None:
        self.sizes: dict[str, float] = {row.table_name: row.row_count for row in sizes}
        self.shares: dict[tuple[str, str], Any] = {
            (row.table_name, row.column_name): row for row in shares
        }

    def rows(self, table: str) -> float:
        # Never below what was just counted; -1 means never analyzed.
        return max(self.sizes.get(table, -1.0), float(COUNT_CAP + 1))

    def share(self, table: str, column: str, value: str | None) -> float:
        """The share of rows whose `column` is `value` (None: NULL); all of them while the
        column has no statistics yet (so the minority counts read 0, not the whole table)."""
        stats = self.shares.get((table, column))
        if stats is None:
            return 1.0
        if value is None:
            return float(stats.null_frac)
        common = dict(zip(stats.common_values or [], stats.common_shares or [], strict=True))
        return float(common.get(value, 0.0))

    def estimates(self) -> dict[str, int]:
        users, devices = self.rows("users"), self.rows("devices")
        unrevoked = self.share("devices", "revoked_at", None)
        return {
            "users": round(users),
            "users_disabled": round(users * (1 - self.share("users", "is_active", "t"))),
            "staff": round(users * (1 - self.share("users", "role", "user"))),
            "devices_active": round(devices * unrevoked),
            "devices_revoked": round(devices * (1 - unrevoked)),
        }


async def system_counts(*, session: AsyncSession) -> Counts:
    """Every count of the overview, exact where that is cheap (see the module's docstring)."""
    tables = dict((await session.execute(text(TABLE_COUNTS), _PROBE)).one()._mapping)
    working = dict((await session.execute(text(WORKING_SET_COUNTS), _PROBE)).one()._mapping)
    values = {name: tables[name] for names in _TABLE_COUNTS.values() for name in names}
    estimated = [
        name
        for table, names in _TABLE_COUNTS.items()
        if tables[table] > COUNT_CAP
        for name in names
    ]
    if estimated:
        statistics = _Statistics(
            await session.execute(text(TABLE_SIZES)), await session.execute(text(COLUMN_SHARES))
        )
        estimates = statistics.estimates()
        values.update({name: estimates[name] for name in estimated})
    at_least = [name for name, count in working.items() if count > COUNT_CAP]
    values.update({name: min(count, COUNT_CAP) for name, count in working.items()})
    return Counts(**values, estimated=estimated, at_least=at_least)


async def open_alerts(*, session: AsyncSession, limit: int) -> list[RecentAlert]:
    """The latest open alerts, with their owner's email."""
    rows = await session.execute(text(OPEN_ALERTS), {"limit": limit})
    return [RecentAlert.model_validate(dict(row._mapping)) for row in rows]


async def overview(
    *, session: AsyncSession, redis: ArqRedis, queue_name: str, cache_seconds: int
) -> Overview:
    """What the overview page and `GET /v1/overview` show: from the cache when it was read
    less than `cache_seconds` ago (by any replica), else read now and cached."""
    if cache_seconds and (cached := await redis.get(CACHE_KEY)) is not None:
        return Overview.model_validate_json(cached)
    fresh = Overview(
        as_of=datetime.now(UTC),
        counts=await system_counts(session=session),
        queues=[await queue_health(redis=redis, queue_name=queue_name)],
        recent_alerts=await open_alerts(session=session, limit=8),
        recent_failures=await recent_failures(
            session=session, redis=redis, queue_name=queue_name, limit=8
        ),
    )
    if cache_seconds:
        await redis.set(CACHE_KEY, fresh.model_dump_json(), ex=cache_seconds)
    return fresh
