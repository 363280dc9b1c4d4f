"""The operations of issue 18 as `bench_scale.py` drives them: HTTP requests to the real api and
admin processes with real tokens, and the worker's crons enqueued by name as its scheduler
would, timed from its own job-duration histogram."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from benchlib import Service
from scale_data import (
    ADMIN_EMAIL,
    HEAVY_EMAIL,
    PASSWORD,
    SHORT_TRIP_EVENTS,
    Subjects,
    add_trip,
    day_partitions,
)

from tripline_common.messaging import create_redis
from tripline_common.platform import CommonSettings

RETENTION_EVENTS = 20_000
"""Expired events each retention run finds, in either database: the same work on tables of
different sizes."""
LOST_SIGNAL_AFTER_SECONDS = 1800
QUIET = "SET auto_explain.log_min_duration = -1"
"""For the benchmark's own connections: their statements are not the operation's plans."""


@dataclass
class Target:
    """One database under test with its own processes, and who the requests are made as."""

    name: str
    dsn: str
    redis_url: str
    queue_name: str
    api: Service
    admin: Service
    worker: Service
    subjects: Subjects
    tokens: dict[str, str] = field(default_factory=dict)
    """Bearer tokens by email."""
    fresh_trips: dict[str, list[uuid.UUID]] = field(default_factory=dict)
    """Trips made to be deleted, by size (`long`, `short`)."""
    last_event_id: dict[str, str] = field(default_factory=dict)
    """By email: an alert id with a few of the user's alerts raised after it (SSE replay)."""
    cursors: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """Second-page cursors by (path, sort, email)."""

    def client(self, service: Service) -> httpx.Client:
        return httpx.Client(base_url=service.url, timeout=120)


def login(target: Target, email: str) -> str:
    """A real access token of `email`, from the api's login."""
    answer = httpx.post(
        f"{target.api.url}/v1/auth/token",
        data={"username": email, "password": PASSWORD},
        timeout=30,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


@dataclass(frozen=True)
class Timing:
    """One run of an operation: seconds, and for a download the seconds to its first byte."""

    seconds: float
    first_byte: float | None = None


Run = Callable[[Target, httpx.Client, httpx.Client, str], Timing]
"""How an operation runs once: (target, api client, admin client, the subject's key)."""


def _get(service: str, path: str | Callable[[Target, str], str], **params: str) -> Run:
    """A GET of `service` ('api' or 'admin'), as the subject (api) or the admin (admin)."""

    def run(target: Target, api: httpx.Client, admin: httpx.Client, who: str) -> Timing:
        client = api if service == "api" else admin
        email = who if service == "api" else target.subjects.admin_email
        url = path(target, who) if callable(path) else path
        query = dict(params)
        if query.get("cursor") == "*":  # The second page, one row a page (see fill_cursors).
            query |= {"cursor": target.cursors[(url, query["sort"], who)], "limit": "1"}
        started = time.perf_counter()
        answer = client.get(url, params=query, headers=_auth(target, email))
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"GET {url} {query} answered {answer.status_code}: {answer.text}")
        return Timing(elapsed)

    return run


def _auth(target: Target, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.tokens[email]}"}


def _sse_replay(target: Target, api: httpx.Client, admin: httpx.Client, who: str) -> Timing:
    """Open the SSE stream with `Last-Event-ID`; the time to the first replayed event."""
    headers = {**_auth(target, who), "Last-Event-ID": target.last_event_id[who]}
    started = time.perf_counter()
    with api.stream("GET", "/v1/alerts/stream", headers=headers) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"SSE answered {answer.status_code}")
        for line in answer.iter_lines():
            if line.startswith("id:"):
                return Timing(time.perf_counter() - started)
    raise SystemExit("SSE stream ended before replaying anything")


def _export(target: Target, api: httpx.Client, admin: httpx.Client, who: str) -> Timing:
    """Download a trip's telemetry CSV: to the first byte, and in all."""
    subjects = target.subjects
    trip = subjects.long_trip if who == "long" else subjects.short_trip
    started = time.perf_counter()
    first: float | None = None
    url = f"/v1/trips/{trip}/telemetry.csv"
    with api.stream("GET", url, headers=_auth(target, subjects.heavy_email)) as answer:
        if answer.status_code != 200:
            raise SystemExit(f"export answered {answer.status_code}")
        for _ in answer.iter_raw():
            if first is None:
                first = time.perf_counter() - started
    return Timing(time.perf_counter() - started, first)


def _delete(target: Target, api: httpx.Client, admin: httpx.Client, who: str) -> Timing:
    """Delete one of the trips made for it (`long` or `short`)."""
    trip = target.fresh_trips[who].pop()
    started = time.perf_counter()
    answer = api.delete(f"/v1/trips/{trip}", headers=_auth(target, target.subjects.heavy_email))
    elapsed = time.perf_counter() - started
    if answer.status_code != 204:
        raise SystemExit(f"DELETE trip answered {answer.status_code}: {answer.text}")
    return Timing(elapsed)


_SUM = r'^tripline_worker_job_duration_seconds_sum\{{function="{}"\}} ([\d.e+-]+)$'
_COUNT = r'^tripline_worker_job_duration_seconds_count\{{function="{}"\}} ([\d.e+-]+)$'


def _job_metrics(worker: Service, function: str) -> tuple[float, float]:
    text = httpx.get(f"{worker.ops_url}/metrics", timeout=10).text
    total = re.search(_SUM.format(function), text, re.MULTILINE)
    count = re.search(_COUNT.format(function), text, re.MULTILINE)
    return (
        float(total.group(1)) if total else 0.0,
        float(count.group(1)) if count else 0.0,
    )


def run_cron(target: Target, function: str) -> float:
    """Enqueue the worker's cron `function` by name (ARQ registers crons as functions, so the
    worker runs it as its schedule would) and wait for it; its run time, from the worker's
    `tripline_worker_job_duration_seconds`."""
    import asyncio

    before_sum, before_count = _job_metrics(target.worker, function)

    async def enqueue() -> None:
        settings = CommonSettings(
            _env_file=None, redis_url=target.redis_url, arq_queue_name=target.queue_name
        )
        redis = create_redis(settings)
        try:
            await redis.enqueue_job(function, _job_id=f"bench-{function}-{uuid.uuid4()}")
        finally:
            await redis.aclose()

    asyncio.run(enqueue())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        total, count = _job_metrics(target.worker, function)
        if count > before_count:
            return total - before_sum
        time.sleep(0.05)
    raise SystemExit(f"the worker did not run {function} within 300 s")


def _lost_signal(target: Target, api: httpx.Client, admin: httpx.Client, who: str) -> Timing:
    return Timing(run_cron(target, "check_lost_signal"))


def _retention(target: Target, api: httpx.Client, admin: httpx.Client, who: str) -> Timing:
    """Give the database `RETENTION_EVENTS` expired events, then run the purge."""
    import asyncio

    asyncio.run(add_expired(target.dsn, target.subjects.heavy_device))
    return Timing(run_cron(target, "purge_telemetry"))


async def add_expired(dsn: str, device: uuid.UUID) -> None:
    """`RETENTION_EVENTS` processed events received 40 days ago (past any retention the
    benchmark's worker keeps), in a day partition of their own, as the days past retention are
    when the cron comes to them."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(QUIET)
        await day_partitions(conn, -40, -40)
        await conn.execute(
            """
            WITH batches AS (
                INSERT INTO telemetry_batches (device_id, status, event_count, received_at,
                                               processed_at)
                SELECT $1, 'processed', 100, now() - interval '40 days',
                       now() - interval '40 days'
                FROM generate_series(1, $2::int / 100)
                RETURNING id
            )
            INSERT INTO telemetry_events (batch_id, device_id, recorded_at, lat, lon, received_at)
            SELECT id, $1, now() - interval '40 days', 52.5, 13.4, now() - interval '40 days'
            FROM batches CROSS JOIN generate_series(1, 100)
            """,
            device,
            RETENTION_EVENTS,
        )
    finally:
        await conn.close()


@dataclass(frozen=True)
class Operation:
    """One row of the report. `columns` maps each column (heavy, light, empty) to the subject
    it runs as: an email for the user-facing ones, a trip size for export and deletion, the
    admin for the admin's, None where the column does not apply."""

    name: str
    kind: str
    """user, admin, overview, export, delete, cron, retention: picks the target it is held to."""
    run: Run
    columns: Mapping[str, str | None]
    repeatable: bool = True


def operations(subjects: Subjects) -> list[Operation]:
    """Issue 18's operations, in report order."""
    heavy, light = subjects.heavy_email, subjects.light_email
    users = {"heavy": heavy, "light": light, "empty": heavy}
    admin = {"heavy": "admin", "light": None, "empty": "admin"}
    sizes = {"heavy": "long", "light": "short", "empty": "short"}
    future = (datetime.now(UTC) + timedelta(days=3650)).isoformat()

    def trip(target: Target, who: str) -> str:
        s = target.subjects
        return f"/v1/trips/{s.heavy_trip if who == s.heavy_email else s.light_trip}"

    def user(name: str, run: Run) -> Operation:
        return Operation(name, "user", run, users)

    def operator(name: str, run: Run, kind: str = "admin") -> Operation:
        return Operation(name, kind, run, admin)

    return [
        user("trips, default sort", _get("api", "/v1/trips")),
        user("trips by planned_start", _get("api", "/v1/trips", sort="-planned_start")),
        user("trips by name", _get("api", "/v1/trips", sort="name")),
        user("trips by name, cursor", _get("api", "/v1/trips", sort="name", cursor="*")),
        user(
            "trips status=active, future start",
            _get("api", "/v1/trips", status="active", planned_start_from=future),
        ),
        user("trip stats", _get("api", "/v1/trips/stats")),
        user("trip read", _get("api", trip)),
        user("alerts, default sort", _get("api", "/v1/alerts")),
        user("alerts by rule", _get("api", "/v1/alerts", sort="rule")),
        user("alerts by status", _get("api", "/v1/alerts", sort="status")),
        user("alerts by rule, cursor", _get("api", "/v1/alerts", sort="rule", cursor="*")),
        user("SSE replay (Last-Event-ID)", _sse_replay),
        operator("admin overview", _get("admin", "/v1/overview"), "overview"),
        operator("admin jobs", _get("admin", "/v1/jobs")),
        operator("admin jobs, oldest first", _get("admin", "/v1/jobs", sort="created_at")),
        operator("admin devices", _get("admin", "/v1/devices")),
        operator("admin devices by name", _get("admin", "/v1/devices", sort="name")),
        operator("admin users", _get("admin", "/v1/users")),
        operator("admin users by email", _get("admin", "/v1/users", sort="email")),
        operator(
            "audit log by request ID",
            _get("admin", "/v1/audit-log", request_id="req-" + "0" * 32),
        ),
        operator("audit log by action", _get("admin", "/v1/audit-log", action="device.revoke")),
        # Text searches for what both databases hold alike (the named users' rows): the same
        # matches on tables of different sizes. A term that matches more rows as the table
        # grows costs its matches, which no index can avoid (docs/performance.md).
        operator("audit log by actor text", _get("admin", "/v1/audit-log", actor=ADMIN_EMAIL)),
        operator("admin users q=", _get("admin", "/v1/users", q=HEAVY_EMAIL.split("@")[0])),
        operator("admin devices q=", _get("admin", "/v1/devices", q="own device")),
        Operation("CSV export", "export", _export, sizes),
        Operation("trip deletion", "delete", _delete, sizes, repeatable=False),
        Operation("check_lost_signal, nothing new", "cron", _lost_signal, admin),
        Operation("retention purge", "retention", _retention, admin),
    ]


async def prepare(target: Target, reps: int, long_events: int) -> dict[str, int]:
    """What the operations need in `target`'s database: trips to delete, lost-signal state
    (every active trip's silence restarted: half silent for two hours, none alerted), the
    SSE replay's starting alert. Returns the silent trips."""
    conn = await asyncpg.connect(target.dsn)
    s = target.subjects
    try:
        await conn.execute(QUIET)
        long = [
            await add_trip(conn, s.heavy_email, "Delete me (long)", long_events)
            for _ in range(reps if s.long_trip else 0)
        ]
        short = [
            await add_trip(conn, s.heavy_email, "Delete me", SHORT_TRIP_EVENTS) for _ in range(reps)
        ]
        target.fresh_trips = {"long": long, "short": short}
        await conn.execute("DELETE FROM alerts WHERE rule = 'lost_signal'")
        await conn.execute(
            "UPDATE trips SET last_seen_at = now() - CASE WHEN get_byte(uuid_send(id), 15) % 2 = 0"
            " THEN interval '2 hours' ELSE interval '0 s' END WHERE status = 'active'"
        )
        silent: int = await conn.fetchval(
            "SELECT count(*) FROM trips WHERE status = 'active'"
            " AND last_seen_at < now() - interval '1 hour'"
        )
        for email in (s.heavy_email, s.light_email):
            target.last_event_id[email] = str(
                await conn.fetchval(
                    "SELECT a.id FROM alerts AS a JOIN users AS u ON u.id = a.owner_id"
                    " WHERE u.email = $1 ORDER BY a.raised_at DESC, a.id DESC OFFSET 3 LIMIT 1",
                    email,
                )
            )
        await conn.execute("ANALYZE trips, alerts")
        return {"silent": silent}
    finally:
        await conn.close()


def raise_lost_signal_backlog(target: Target) -> tuple[float, int, int]:
    """Run `check_lost_signal` until it raises nothing; (first run's seconds, runs, silent
    trips still without an alert)."""
    import asyncio

    first = run_cron(target, "check_lost_signal")
    runs = 1

    async def raised() -> int:
        conn = await asyncpg.connect(target.dsn)
        try:
            count: int = await conn.fetchval("SELECT count(*) FROM alerts WHERE rule='lost_signal'")
            return count
        finally:
            await conn.close()

    before = asyncio.run(raised())
    while runs < 100:
        run_cron(target, "check_lost_signal")
        runs += 1
        after = asyncio.run(raised())
        if after == before:
            break
        before = after

    async def unalerted() -> int:
        conn = await asyncpg.connect(target.dsn)
        try:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM trips AS t WHERE t.status = 'active'"
                " AND t.last_seen_at < now() - interval '1 hour' AND NOT EXISTS"
                " (SELECT FROM alerts AS a WHERE a.trip_id = t.id AND a.rule = 'lost_signal')"
            )
            return count
        finally:
            await conn.close()

    return first, runs, asyncio.run(unalerted())


def fill_cursors(target: Target, ops: list[Operation]) -> None:
    """The second-page cursor of each cursor operation, from a first page of one row: even
    the light user has two pages of that."""
    with target.client(target.api) as api:
        for op in ops:
            if "cursor" not in op.name:
                continue
            path, sort = (
                ("/v1/trips", "name") if op.name.startswith("trips") else ("/v1/alerts", "rule")
            )
            for who in filter(None, op.columns.values()):
                answer = api.get(
                    path, params={"sort": sort, "limit": "1"}, headers=_auth(target, who)
                )
                answer.raise_for_status()
                target.cursors[(path, sort, who)] = answer.json()["next_cursor"]
