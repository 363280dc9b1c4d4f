"""Benchmark: the worker end to end (batch in Postgres -> alerts committed), and queue latency.

    uv run python scripts/bench_worker.py [--batches 200] [--batch-size 500] [--devices 16]
                                          [--rounds 3] [--latency-seconds 15]

Needs Postgres/Redis (found or started like `make dev` does). It builds a scratch database with
the real migrations: `--devices` devices, each on an active trip (route with a waypoint, an
80 km/h limit, a 500 m corridor), and `--batches` pending batches of their telemetry, some of it
speeding and some off the route, so that alerts are raised and inserted. No webhook endpoints:
deliveries are network-bound and measured by the tests, not here.

1. Throughput, in interleaved rounds (the data is reset between them):
   - baseline: one raw asyncpg connection doing, per batch and in one transaction, the writes
     processing cannot avoid: lock the batch and the trip, attach the events
     (UPDATE ... RETURNING), update the trip, mark the batch processed. No rules, no alerts,
     no ARQ, no SQLAlchemy: the floor of the database work;
   - tripline: the real `tripline-worker` process (one process, default ARQ settings); every
     batch is enqueued at once and the clock stops at the last `processed_at`. Each round
     also prints the CPU time per batch of both (client and backend), from /proc: on a
     shared machine it moves much less than the rate.
2. Queue latency: the real `tripline-ingest` and `tripline-worker`, devices posting batches at
   half the worker's measured maximum rate (open loop, evenly spaced) for `--latency-seconds`;
   latency is each batch's `processed_at - received_at` (202 to processed, as Postgres saw it).

Targets (issue 4): worker >= 10,000 events/s; latency p99 < 1 s at half the maximum rate.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
from benchlib import (
    ScratchDatabase,
    backend_cpu_seconds,
    cpu_seconds,
    database_backends,
    insert_bench_devices,
    insert_bench_user,
    start_service,
    stop,
    verdict,
)

from tripline_common.messaging import PROCESS_BATCH, create_redis
from tripline_common.platform import CommonSettings

ORIGIN, WANNSEE, DESTINATION = (52.5200, 13.4050), (52.4560, 13.2900), (52.3906, 13.0645)
COLUMNS = ("batch_id", "device_id", "recorded_at", "lat", "lon", "speed_kmh", "accuracy_m")


def fixes(n: int, start: datetime, step: int) -> list[tuple[datetime, float, float, float, float]]:
    """`n` fixes along the route from `step`-th position on: 60-99 km/h (some speeding), every
    37th fix 2 km off the route."""
    out = []
    for i in range(n):
        k = step + i
        t = min(1.0, k / 200_000)
        lat = ORIGIN[0] + (WANNSEE[0] - ORIGIN[0]) * t
        lon = ORIGIN[1] + (WANNSEE[1] - ORIGIN[1]) * t
        if k % 37 == 0:
            lat += 0.018
        out.append((start + timedelta(seconds=k), lat, lon, 60.0 + k % 40, 5.0))
    return out


async def prepare(dsn: str, devices: int, batches: int, size: int) -> list[tuple[str, str]]:
    """Devices with active trips and `batches` pending batches; returns (device id, key)."""
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await insert_bench_user(conn)
        made = []
        start = datetime.now(UTC) - timedelta(hours=6)
        for device_id, key in await insert_bench_devices(conn, user_id, devices):
            trip_id = await conn.fetchval(
                "INSERT INTO trips (owner_id, device_id, name, status, origin_lat, origin_lon,"
                " destination_lat, destination_lon, planned_start, planned_arrival,"
                " speed_limit_kmh, corridor_m, started_at)"
                " VALUES ($1, $2, 'bench', 'active', $3, $4, $5, $6, $7, $8, 80, 500, $7)"
                " RETURNING id",
                user_id,
                device_id,
                *ORIGIN,
                *DESTINATION,
                start,
                start + timedelta(days=1),
            )
            await conn.execute(
                "INSERT INTO waypoints (trip_id, seq, lat, lon) VALUES ($1, 0, $2, $3)",
                trip_id,
                *WANNSEE,
            )
            made.append((str(device_id), key))
        for b in range(batches):
            device_id = uuid.UUID(made[b % devices][0])
            batch_id = await conn.fetchval(
                "INSERT INTO telemetry_batches (device_id, event_count) VALUES ($1, $2) "
                "RETURNING id",
                device_id,
                size,
            )
            step = (b // devices) * size
            await conn.copy_records_to_table(
                "telemetry_events",
                records=[(batch_id, device_id, *fix) for fix in fixes(size, start, step)],
                columns=COLUMNS,
            )
        return made
    finally:
        await conn.close()


async def reset(dsn: str) -> None:
    """Back to: every batch pending, no trip progress, no alerts (and no dead tuples)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE alerts CASCADE")
        await conn.execute(
            "UPDATE telemetry_batches SET status = 'pending', attempts = 0, processed_at = NULL"
        )
        await conn.execute("UPDATE telemetry_events SET trip_id = NULL")
        await conn.execute(
            "UPDATE trips SET last_lat = NULL, last_lon = NULL, last_seen_at = NULL,"
            " distance_m = 0, eta = NULL"
        )
        await conn.execute("VACUUM ANALYZE telemetry_events")
        await conn.execute("VACUUM ANALYZE telemetry_batches")
        await conn.execute("VACUUM ANALYZE trips")
    finally:
        await conn.close()


async def baseline(dsn: str) -> tuple[float, int, float]:
    """Events/s of the database floor of processing: the unavoidable writes, raw asyncpg; the
    events, and the CPU time this process and the connection's backend spent on them."""
    conn = await asyncpg.connect(dsn)
    try:
        batch_ids = [r["id"] for r in await conn.fetch("SELECT id FROM telemetry_batches")]
        events = 0
        used = time.process_time() + backend_cpu_seconds([conn])
        started = time.perf_counter()
        for batch_id in batch_ids:
            async with conn.transaction():
                batch = await conn.fetchrow(
                    "SELECT device_id FROM telemetry_batches WHERE id = $1 FOR NO KEY UPDATE",
                    batch_id,
                )
                assert batch is not None, f"batch {batch_id} vanished"
                trip_id = await conn.fetchval(
                    "SELECT id FROM trips WHERE device_id = $1 AND status = 'active'"
                    " FOR NO KEY UPDATE",
                    batch["device_id"],
                )
                rows = await conn.fetch(
                    "UPDATE telemetry_events SET trip_id = $1 WHERE batch_id = $2"
                    " RETURNING recorded_at, lat, lon, speed_kmh, accuracy_m",
                    trip_id,
                    batch_id,
                )
                last = max(rows, key=lambda r: r["recorded_at"])
                await conn.execute(
                    "UPDATE trips SET last_lat = $2, last_lon = $3, last_seen_at = $4"
                    " WHERE id = $1",
                    trip_id,
                    last["lat"],
                    last["lon"],
                    last["recorded_at"],
                )
                await conn.execute(
                    "UPDATE telemetry_batches SET status = 'processed', processed_at = now()"
                    " WHERE id = $1",
                    batch_id,
                )
                events += len(rows)
        elapsed = time.perf_counter() - started
        used = time.process_time() + backend_cpu_seconds([conn]) - used
        return events / elapsed, events, used
    finally:
        await conn.close()


async def wait_until_processed(conn: asyncpg.Connection, timeout: float, failure: str) -> None:
    """Poll until no batch is pending; exit with `failure` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while await conn.fetchval("SELECT count(*) FROM telemetry_batches WHERE status = 'pending'"):
        if time.monotonic() > deadline:
            raise SystemExit(failure)
        await asyncio.sleep(0.2)


async def worker_round(
    dsn: str, env: dict[str, str], workdir: Path
) -> tuple[float, int, int, float, float]:
    """Events/s of the real worker: enqueue every batch at once, stop at the last one done;
    the events, the alerts, and the CPU time the worker and its backends spent meanwhile."""
    worker = start_service("tripline-worker", env, workdir).process
    settings = CommonSettings(_env_file=None, redis_url=env["REDIS_URL"])
    redis = create_redis(settings)
    conn = await asyncpg.connect(dsn)
    try:
        batch_ids = [r["id"] for r in await conn.fetch("SELECT id FROM telemetry_batches")]
        worker_used, backends = cpu_seconds(worker.pid), await database_backends(conn)
        started = datetime.now(UTC)
        for batch_id in batch_ids:
            await redis.enqueue_job(
                PROCESS_BATCH.name,
                str(batch_id),
                _job_id=PROCESS_BATCH.job_id(batch_id),
                _queue_name=env["ARQ_QUEUE_NAME"],
            )
        await wait_until_processed(conn, 600, "the worker did not finish within 10 minutes")
        worker_used = cpu_seconds(worker.pid) - worker_used
        # A backend that was not there at the start (a connection opened during the round)
        # counts from zero.
        backends_used = sum(
            used - backends.get(pid, 0.0) for pid, used in (await database_backends(conn)).items()
        )
        finished = await conn.fetchval("SELECT max(processed_at) FROM telemetry_batches")
        events = await conn.fetchval(
            "SELECT count(*) FROM telemetry_events WHERE trip_id IS NOT NULL"
        )
        alerts = await conn.fetchval("SELECT count(*) FROM alerts")
        rate = events / (finished - started).total_seconds()
        return rate, events, alerts, worker_used, backends_used
    finally:
        await conn.close()
        await redis.aclose()
        stop(worker)


async def latency_run(
    dsn: str,
    env: dict[str, str],
    workdir: Path,
    devices: list[tuple[str, str]],
    batches_per_s: float,
    seconds: float,
    size: int,
) -> list[float]:
    """Post batches at a fixed rate through real ingest to the real worker; return latencies."""
    conn = await asyncpg.connect(dsn)
    await conn.execute("TRUNCATE telemetry_batches CASCADE")
    ingest = start_service("tripline-ingest", env, workdir)
    worker = start_service("tripline-worker", env, workdir).process
    start = datetime.now(UTC) - timedelta(hours=12)
    bodies = [
        orjson.dumps(
            {
                "events": [
                    {"recorded_at": t.isoformat(), "lat": lat, "lon": lon, "speed_kmh": speed}
                    for t, lat, lon, speed, _ in fixes(size, start, (n // len(devices)) * size)
                ]
            }
        )
        for n in range(int(batches_per_s * seconds) + 1)
    ]
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            sent: list[asyncio.Task[httpx.Response]] = []
            t0 = time.monotonic()
            for n, body in enumerate(bodies):
                # Open loop: each batch leaves at its time, whatever the previous ones do.
                await asyncio.sleep(max(0.0, t0 + n / batches_per_s - time.monotonic()))
                _, key = devices[n % len(devices)]
                sent.append(
                    asyncio.ensure_future(
                        client.post(
                            f"{ingest.url}/v1/telemetry",
                            content=body,
                            headers={"X-Device-Key": key, "Content-Type": "application/json"},
                        )
                    )
                )
            answers = await asyncio.gather(*sent)
        refused = [a.status_code for a in answers if a.status_code != 202]
        if refused:
            raise SystemExit(f"ingest refused {len(refused)} batches: {refused[:5]}")
        await wait_until_processed(conn, 120, "batches still pending 2 minutes after the load")
        rows = await conn.fetch(
            "SELECT extract(epoch FROM processed_at - received_at) AS latency"
            " FROM telemetry_batches"
        )
        return sorted(float(r["latency"]) for r in rows)
    finally:
        await conn.close()
        stop(worker)
        stop(ingest.process)


def percentile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="batches per throughput round")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch")
    parser.add_argument("--devices", type=int, default=16, help="devices, each on a trip")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--latency-seconds", type=float, default=15, help="latency run length")
    args = parser.parse_args()

    database = ScratchDatabase.create("worker")
    dsn = database.dsn
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    env = database.service_env(
        ARQ_QUEUE_NAME=f"tripline:bench:{uuid.uuid4().hex[:8]}",
        DEVICE_RATE_LIMIT="100000000",
        LOST_SIGNAL_AFTER_SECONDS="86400",  # The bench's trips are silent between runs.
        SMTP_HOST="127.0.0.1",  # Required outside development; the bench sends no mail.
    )
    try:
        print(
            f"{args.devices} devices on active trips, {args.batches} batches of "
            f"{args.batch_size} events per round, {args.rounds} rounds",
            flush=True,
        )
        devices = asyncio.run(prepare(dsn, args.devices, args.batches, args.batch_size))
        bases, ours = [], []
        cpus: list[tuple[float, float]] = []
        for round_number in range(1, args.rounds + 1):
            asyncio.run(reset(dsn))
            base, events, base_cpu = asyncio.run(baseline(dsn))
            bases.append(base)
            print(
                f"round {round_number} baseline  {base:9.0f} events/s ({events} events; "
                f"CPU per batch {base_cpu / args.batches * 1000:.1f} ms, client + backend)"
            )
            asyncio.run(reset(dsn))
            rate, events, alerts, used, backends_used = asyncio.run(worker_round(dsn, env, workdir))
            ours.append(rate)
            per_batch = (used / args.batches * 1000, backends_used / args.batches * 1000)
            cpus.append(per_batch)
            print(
                f"round {round_number} tripline  {rate:9.0f} events/s = {rate / base:.0%} "
                f"({events} events attached, {alerts} alerts; CPU per batch "
                f"{per_batch[0]:.1f} ms worker + {per_batch[1]:.1f} ms its backends)",
                flush=True,
            )
        base, rate = statistics.median(bases), statistics.median(ours)

        half = rate / 2 / args.batch_size
        print(
            f"\nlatency: {half:.1f} batches/s ({half * args.batch_size:.0f} events/s, half the "
            f"worker's maximum) through ingest for {args.latency_seconds:.0f}s",
            flush=True,
        )
        latencies = asyncio.run(
            latency_run(dsn, env, workdir, devices, half, args.latency_seconds, args.batch_size)
        )
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(
            f"{len(latencies)} batches: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms"
        )
        print(
            f"\nmedians: baseline {base:.0f} events/s, tripline {rate:.0f} events/s "
            f"({rate / base:.0%} of the baseline); the worker's CPU per batch "
            f"{statistics.median(c[0] for c in cpus):.1f} ms + "
            f"{statistics.median(c[1] for c in cpus):.1f} ms its backends"
        )
        checks = [
            (f"worker: {rate:.0f} events/s end to end (target >= 10,000)", rate >= 10_000),
            (f"queue latency p99 at half the maximum rate: {p99 * 1000:.0f} ms (target < 1000)",
             p99 < 1.0),
        ]  # fmt: skip
        return verdict(checks)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        database.drop()


if __name__ == "__main__":
    sys.exit(main())
