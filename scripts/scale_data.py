"""The data set of `bench_scale.py`: issue 18's volumes times a scale, generated server-side
(`INSERT ... SELECT generate_series`), and the named users and trips the operations are driven
for."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from tripline_common.security import hash_password

PASSWORD = "bench-scale-password"  # noqa: S105 - the scratch databases' users only
HEAVY_USERS = 5
DAYS = 31
EVENTS_PER_BATCH = 100
SHORT_TRIP_EVENTS = 100
"""Events of the short trips that export and deletion are compared against."""


@dataclass(frozen=True)
class Volumes:
    """Rows of the bulk data. Issue 18 at `scale` 1.0; every count scales alike, so the heavy
    users keep half of all trips and alerts at any scale."""

    users: int
    devices: int
    trips: int
    heavy_trips: int
    """Trips of each of the `HEAVY_USERS` heavy users (part of `trips`)."""
    events: int
    long_trip_events: int
    alerts: int
    audit: int
    sessions: int
    jobs: int

    @property
    def batches(self) -> int:
        return self.events // EVENTS_PER_BATCH

    @classmethod
    def at(cls, scale: float) -> Volumes:
        def n(full: int, least: int) -> int:
            return max(least, round(full * scale))

        return cls(
            users=n(20_000, 50),
            devices=n(50_000, 200),
            trips=n(1_000_000, 1_000),
            heavy_trips=n(100_000, 100),
            events=n(20_000_000, 20_000),
            long_trip_events=n(200_000, 2_000),
            alerts=n(2_000_000, 2_000),
            audit=n(1_000_000, 1_000),
            sessions=n(500_000, 500),
            jobs=n(200_000, 200),
        )


@dataclass(frozen=True)
class Subjects:
    """Who and what the operations are driven for, found in a loaded database."""

    heavy_email: str
    light_email: str
    admin_email: str
    heavy_trip: uuid.UUID
    """A trip of the heavy user with waypoints (the trip read)."""
    light_trip: uuid.UUID
    long_trip: uuid.UUID | None
    """The heavy user's trip with `long_trip_events` events (None in the near-empty database)."""
    short_trip: uuid.UUID
    """The heavy user's trip with `SHORT_TRIP_EVENTS` events."""
    heavy_device: uuid.UUID


HEAVY_EMAIL = "heavy-1@scale.example"
LIGHT_EMAIL = "light@scale.example"
ADMIN_EMAIL = "admin@scale.example"


async def load(dsn: str, volumes: Volumes | None) -> float:
    """Fill the migrated, empty database at `dsn`: the named users (heavy, light, admin) with a
    handful of rows each, then, unless `volumes` is None (the near-empty baseline), the bulk
    data. Returns the seconds it took (ANALYZE included).

    Triggers and foreign-key checks are off while loading (`session_replication_role =
    replica`): every row is generated valid, and `trip_history_totals` is counted afterwards by
    the statement migration 0008 uses."""
    started = time.perf_counter()
    password_hash = await hash_password(PASSWORD)
    conn = await asyncpg.connect(dsn)
    try:
        # As a database that has lived on partitions: days instead of the empty legacy
        # partition that migration 0011 leaves on a new database.
        await conn.execute("DROP TABLE telemetry_events_legacy")
        await day_partitions(conn, -(DAYS + 1), 7)
        await conn.execute("SET session_replication_role = replica")
        await _named_users(conn, password_hash)
        if volumes is not None:
            await _bulk(conn, volumes)
        await _named_rows(conn)
        await conn.execute(
            "INSERT INTO trip_history_totals (owner_id, status, trips, distance_m)"
            " SELECT owner_id, status, count(*), coalesce(sum(distance_m), 0) FROM trips"
            " WHERE status IN ('completed', 'cancelled') GROUP BY owner_id, status"
        )
        await conn.execute("RESET session_replication_role")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def day_partitions(conn: asyncpg.Connection, first: int, last: int) -> None:
    """Day partitions of `telemetry_events` from `first` to `last` days from today (those that
    do not exist yet), as a database that has lived on them has."""
    today = await conn.fetchval("SELECT date_trunc('day', now() AT TIME ZONE 'UTC')")
    for offset in range(first, last + 1):
        start = today + timedelta(days=offset)
        name = f"telemetry_events_p{start:%Y%m%d}"
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF telemetry_events FOR VALUES"
            f" FROM ('{start.isoformat()}+00') TO ('{(start + timedelta(days=1)).isoformat()}+00')"
        )


async def _named_users(conn: asyncpg.Connection, password_hash: str) -> None:
    await conn.execute(
        "INSERT INTO users (email, password_hash, display_name, role, email_verified_at,"
        " created_at) SELECT email, $1, display_name, role, now(), now() - interval '400 days'"
        " FROM (VALUES ($2, 'Heavy 1', 'user'), ($3, 'Light', 'user'), ($4, 'Admin', 'admin'))"
        " AS u (email, display_name, role)",
        password_hash,
        HEAVY_EMAIL,
        LIGHT_EMAIL,
        ADMIN_EMAIL,
    )


# Numbered copies of the bulk rows' ids, so generated rows can point at "the n-th user".
_BULK = [
    # Users 1..HEAVY_USERS-1 are the other heavy users; the named heavy user is the first.
    """
    CREATE TEMP TABLE bulk_users AS
    SELECT n, gen_random_uuid() AS id FROM generate_series(1, $1::int) AS n
    """,
    "ALTER TABLE bulk_users ADD PRIMARY KEY (n)",
    """
    INSERT INTO users (id, email, password_hash, display_name, email_verified_at, created_at,
                       last_login_at)
    SELECT id, CASE WHEN n < 5 THEN 'heavy-' || n + 1 ELSE 'user-' || n END || '@scale.example',
           'x', 'User ' || n, now(), now() - (n % 365) * interval '1 day' - n * interval '1 s',
           now() - (n % 30) * interval '1 day'
    FROM bulk_users
    """,
    # The heavy users own 20 devices each (devices 0..99); the rest go round the other users.
    """
    CREATE TEMP TABLE bulk_devices AS
    SELECT g.n, gen_random_uuid() AS id,
           CASE WHEN g.n < 20 THEN (SELECT id FROM users WHERE email = 'heavy-1@scale.example')
                WHEN g.n < 100 THEN (SELECT id FROM bulk_users AS u WHERE u.n = g.n / 20)
                ELSE (SELECT id FROM bulk_users AS u WHERE u.n = 5 + g.n % ($2::int - 4))
           END AS owner_id
    FROM generate_series(0, $1::int - 1) AS g (n)
    """,
    """
    INSERT INTO devices (id, owner_id, name, api_key_prefix, api_key_hash, created_at,
                         last_seen_at, revoked_at)
    SELECT id, owner_id, 'device-' || n, 'tl_' || left(md5(n::text), 8),
           md5(n::text) || md5('k' || n), now() - (n % 300) * interval '1 day' - n * interval '1 s',
           now() - (n % 60) * interval '1 minute',
           CASE WHEN n % 50 = 49 THEN now() - interval '1 day' END
    FROM bulk_devices
    """,
    "ALTER TABLE bulk_devices ADD PRIMARY KEY (n)",
    # Trips: the first HEAVY_USERS * heavy_trips belong to the heavy users (in runs, on their
    # 20 devices), the rest go round the other devices. A device holds at most one active trip:
    # its first in each run (revoked devices none); half the active trips are silent (lost
    # signal). Planned starts are spread over 400 days, shuffled.
    """
    CREATE TEMP TABLE bulk_trips AS
    SELECT g.n, gen_random_uuid() AS id, d.id AS device_id, d.owner_id,
           CASE WHEN k.first AND d.n % 50 <> 49 THEN 'active'
                WHEN g.n % 20 = 1 THEN 'cancelled' WHEN g.n % 10 = 2 THEN 'planned'
                ELSE 'completed' END AS status,
           now() - ((g.n::bigint * 7919) % $1::int) * (interval '400 days' / $1::int)
               AS planned_start
    FROM generate_series(0, $1::int - 1) AS g (n)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN g.n < 5 * $3::int THEN (g.n / $3::int) * 20 + g.n % 20
                    ELSE 100 + (g.n - 5 * $3::int) % ($2::int - 100) END AS device,
               CASE WHEN g.n < 5 * $3::int THEN g.n % $3::int < 20
                    ELSE g.n - 5 * $3::int < $2::int - 100 AND g.n % 5 = 0 END AS first
    ) AS k
    JOIN bulk_devices AS d ON d.n = k.device
    """,
    "ALTER TABLE bulk_trips ADD PRIMARY KEY (n)",
    "CREATE TEMP TABLE bulk_active AS SELECT device_id, id FROM bulk_trips WHERE status = 'active'",
    "ALTER TABLE bulk_active ADD PRIMARY KEY (device_id)",
    """
    INSERT INTO trips (id, owner_id, device_id, name, status, origin_lat, origin_lon,
                       destination_lat, destination_lon, planned_start, planned_arrival,
                       speed_limit_kmh, corridor_m, started_at, ended_at, last_lat, last_lon,
                       last_seen_at, distance_m, created_at, updated_at)
    SELECT id, owner_id, device_id, 'Trip ' || md5(n::text), status,
           52.5 + (n % 100) / 1000.0, 13.4 + (n % 97) / 1000.0, 52.39, 13.06,
           planned_start, planned_start + interval '2 hours', 80, 500,
           CASE WHEN status IN ('active', 'completed') THEN planned_start END,
           CASE WHEN status = 'completed' THEN planned_start + interval '100 minutes' END,
           CASE WHEN status <> 'planned' THEN 52.45 END,
           CASE WHEN status <> 'planned' THEN 13.2 END,
           CASE WHEN status = 'active' THEN now() - CASE WHEN n % 2 = 0 THEN interval '1 hour'
                                                         ELSE interval '5 seconds' END
                WHEN status = 'completed' THEN planned_start + interval '100 minutes' END,
           CASE WHEN status = 'completed' THEN 20000 + n % 5000 ELSE 0 END,
           planned_start - interval '1 day', planned_start - interval '1 day'
    FROM bulk_trips
    """,
    # Batches of EVENTS_PER_BATCH events, round the devices, received evenly over DAYS days;
    # events of a device with an active trip belong to that trip.
    """
    CREATE TEMP TABLE bulk_batches AS
    SELECT b.n, gen_random_uuid() AS id, d.id AS device_id, t.id AS trip_id,
           now() - ($1::int - b.n) * (interval '31 days' / $1::int) AS received_at
    FROM generate_series(0, $1::int - 1) AS b (n)
    JOIN bulk_devices AS d ON d.n = b.n % $2::int
    LEFT JOIN bulk_active AS t ON t.device_id = d.id
    """,
    """
    INSERT INTO telemetry_batches (id, device_id, client_batch_id, status, event_count, attempts,
                                   received_at, processed_at)
    SELECT id, device_id, 'b-' || n, 'processed', 100, 1, received_at,
           received_at + interval '50 ms'
    FROM bulk_batches
    """,
    """
    INSERT INTO telemetry_events (batch_id, device_id, trip_id, recorded_at, lat, lon, speed_kmh,
                                  heading_deg, accuracy_m, received_at)
    SELECT b.id, b.device_id, b.trip_id, b.received_at - (100 - i) * interval '1 second',
           52.5 - i / 10000.0, 13.4 - (b.n % 100) / 1000.0, 40 + (i * 7) % 60, (i * 13) % 360, 5,
           b.received_at
    FROM bulk_batches AS b CROSS JOIN generate_series(1, 100) AS i
    """,
    """
    INSERT INTO alerts (owner_id, trip_id, device_id, rule, severity, status, message,
                        dedupe_key, raised_at, acknowledged_at, resolved_at)
    SELECT t.owner_id, t.id, t.device_id, (ARRAY['speeding', 'corridor', 'late',
           'lost_signal'])[1 + a % 4], 'warning', s.status, 'Bulk alert ' || a, 'bulk:' || a,
           s.raised_at, CASE WHEN s.status <> 'open' THEN s.raised_at + interval '1 minute' END,
           CASE WHEN s.status = 'resolved' THEN s.raised_at + interval '2 minutes' END
    FROM generate_series(0, $1::int - 1) AS a
    JOIN bulk_trips AS t ON t.n = a % $2::int
    CROSS JOIN LATERAL (
        SELECT CASE WHEN a % 10 = 0 THEN 'open' WHEN a % 10 < 3 THEN 'acknowledged'
                    ELSE 'resolved' END AS status,
               now() - ($1::int - a) * (interval '31 days' / $1::int) AS raised_at
    ) AS s
    """,
    """
    INSERT INTO audit_log (actor_id, actor_label, action, target_type, target_id, request_id,
                           source_ip, created_at)
    SELECT u.id, 'user-' || u.n || '@scale.example',
           (ARRAY['user.login', 'trip.delete', 'device.create', 'session.revoke',
                  'device.revoke'])[1 + a % 5],
           'user', u.id::text, 'req-' || md5(a::text), '10.0.' || a % 250 || '.1',
           now() - ($1::int - a) * (interval '365 days' / $1::int)
    FROM generate_series(0, $1::int - 1) AS a
    JOIN bulk_users AS u ON u.n = 1 + a % $2::int
    """,
    """
    INSERT INTO auth_sessions (user_id, kind, created_at, expires_at, last_seen_at, ip)
    SELECT u.id, 'api', now() - (s % 60) * interval '1 day',
           now() - (s % 60) * interval '1 day' + interval '30 days',
           now() - (s % 60) * interval '1 day', '10.1.' || s % 250 || '.1'
    FROM generate_series(0, $1::int - 1) AS s
    JOIN bulk_users AS u ON u.n = 1 + s % $2::int
    """,
    """
    INSERT INTO jobs (owner_id, kind, status, arq_job_id, progress, created_at, started_at,
                      finished_at, request_id)
    SELECT u.id, (ARRAY['import_trips', 'export_trips', 'waypoint_import'])[1 + j % 3],
           CASE WHEN j % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 'bulk-' || j, 100,
           now() - ($1::int - j) * (interval '200 days' / $1::int),
           now() - ($1::int - j) * (interval '200 days' / $1::int),
           now() - ($1::int - j) * (interval '200 days' / $1::int) + interval '3 seconds',
           'req-job-' || j
    FROM generate_series(0, $1::int - 1) AS j
    JOIN bulk_users AS u ON u.n = 1 + j % $2::int
    """,
]


async def _bulk(conn: asyncpg.Connection, v: Volumes) -> None:
    # The volumes each statement of _BULK takes as $1, $2, ..., in order.
    names: list[tuple[str, ...]] = [
        ("users",), (), (),
        ("devices", "users"), (), (),
        ("trips", "devices", "heavy_trips"), (), (), (), (),
        ("batches", "devices"), (), (),
        ("alerts", "trips"), ("audit", "users"), ("sessions", "users"), ("jobs", "users"),
    ]  # fmt: skip
    arguments = [tuple(getattr(v, name) for name in each) for each in names]
    for statement, args in zip(_BULK, arguments, strict=True):
        await conn.execute(statement, *args)
    # The long trip: the heavy user's, its events in batches of its device.
    long_trip = await _trip(conn, HEAVY_EMAIL, "Long trip", "completed")
    await add_events(conn, long_trip, v.long_trip_events)


async def _trip(conn: asyncpg.Connection, email: str, name: str, status: str) -> uuid.UUID:
    trip_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO trips (owner_id, device_id, name, status, origin_lat, origin_lon,"
        " destination_lat, destination_lon, planned_start, planned_arrival, speed_limit_kmh,"
        " corridor_m, started_at, ended_at, distance_m)"
        " SELECT u.id, d.id, $2, $3::text, 52.52, 13.40, 52.39, 13.06, now() - interval '3 days',"
        " now() - interval '2 days', 80, 500, now() - interval '3 days',"
        " CASE WHEN $3::text = 'completed' THEN now() - interval '2 days' END, 12000"
        " FROM users AS u CROSS JOIN LATERAL (SELECT id FROM devices WHERE owner_id = u.id"
        " ORDER BY created_at LIMIT 1) AS d WHERE u.email = $1 RETURNING id",
        email,
        name,
        status,
    )
    return trip_id


async def add_events(conn: asyncpg.Connection, trip_id: uuid.UUID, events: int) -> None:
    """`events` processed telemetry events of `trip_id` (from its device), in batches of
    `EVENTS_PER_BATCH`, a second apart, received yesterday."""
    await conn.execute(
        """
        WITH batches AS (
            INSERT INTO telemetry_batches (device_id, status, event_count, received_at,
                                           processed_at)
            SELECT t.device_id, 'processed', 100, now() - interval '1 day' + b * interval '100 s',
                   now() - interval '1 day' + b * interval '100 s'
            FROM trips AS t CROSS JOIN generate_series(0, ($2::int - 1) / 100) AS b
            WHERE t.id = $1
            RETURNING id, device_id, received_at
        )
        INSERT INTO telemetry_events (batch_id, device_id, trip_id, recorded_at, lat, lon,
                                      speed_kmh, heading_deg, accuracy_m, received_at)
        SELECT b.id, b.device_id, $1, b.received_at - (100 - i) * interval '1 s',
               52.5 - i / 10000.0, 13.4, 40 + i % 60, i % 360, 5, b.received_at
        FROM batches AS b CROSS JOIN generate_series(1, 100) AS i
        """,
        trip_id,
        events,
    )


async def add_trip(conn: asyncpg.Connection, email: str, name: str, events: int) -> uuid.UUID:
    """A completed trip of `email`'s first device with `events` events (rounded up to a whole
    batch); returns its id."""
    trip_id = await _trip(conn, email, name, "completed")
    await add_events(conn, trip_id, events)
    return trip_id


async def _named_rows(conn: asyncpg.Connection) -> None:
    """The heavy and light users' own device, a trip with waypoints, a short trip and a few
    alerts, in either database; the light user has nothing else."""
    for email in (HEAVY_EMAIL, LIGHT_EMAIL):
        await conn.execute(
            "INSERT INTO devices (owner_id, name, api_key_prefix, api_key_hash, created_at)"
            " SELECT id, 'own device', 'tl_own', md5(email) || md5(email || 'k'),"
            " now() - interval '500 days' FROM users WHERE email = $1",
            email,
        )
        trip_id = await _trip(conn, email, "Read trip", "planned")
        await conn.execute(
            "INSERT INTO waypoints (trip_id, seq, lat, lon, name)"
            " SELECT $1, s, 52.5 - s / 100.0, 13.4 - s / 100.0, 'Stop ' || s"
            " FROM generate_series(0, 4) AS s",
            trip_id,
        )
        short = await add_trip(conn, email, "Short trip", SHORT_TRIP_EVENTS)
        await conn.execute(
            "INSERT INTO alerts (owner_id, trip_id, rule, status, message, dedupe_key, raised_at)"
            " SELECT t.owner_id, t.id, (ARRAY['speeding', 'corridor', 'late'])[1 + s % 3],"
            " (ARRAY['open', 'acknowledged', 'resolved'])[1 + s % 3], 'Alert ' || s,"
            " 'named:' || t.id || ':' || s, now() - s * interval '1 hour'"
            " FROM trips AS t CROSS JOIN generate_series(0, 5) AS s WHERE t.id = $1",
            short,
        )


async def subjects(dsn: str) -> Subjects:
    """The named rows of a loaded database."""
    conn = await asyncpg.connect(dsn)
    try:

        async def trip(email: str, name: str) -> uuid.UUID | None:
            found: uuid.UUID | None = await conn.fetchval(
                "SELECT t.id FROM trips AS t JOIN users AS u ON u.id = t.owner_id"
                " WHERE u.email = $1 AND t.name = $2 ORDER BY t.created_at LIMIT 1",
                email,
                name,
            )
            return found

        heavy_trip, light_trip, short_trip = (
            await trip(HEAVY_EMAIL, "Read trip"),
            await trip(LIGHT_EMAIL, "Read trip"),
            await trip(HEAVY_EMAIL, "Short trip"),
        )
        if not (heavy_trip and light_trip and short_trip):
            raise SystemExit("not a database loaded by bench_scale.py")
        device = await conn.fetchval(
            "SELECT d.id FROM devices AS d JOIN users AS u ON u.id = d.owner_id"
            " WHERE u.email = $1 AND d.name = 'own device'",
            HEAVY_EMAIL,
        )
        return Subjects(
            heavy_email=HEAVY_EMAIL,
            light_email=LIGHT_EMAIL,
            admin_email=ADMIN_EMAIL,
            heavy_trip=heavy_trip,
            light_trip=light_trip,
            long_trip=await trip(HEAVY_EMAIL, "Long trip"),
            short_trip=short_trip,
            heavy_device=device,
        )
    finally:
        await conn.close()
