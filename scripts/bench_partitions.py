"""Benchmark: what partitioning `telemetry_events` (migration 0011) costs the hot path, against
the plain table it replaced, in one run.

    uv run python scripts/bench_partitions.py [--rounds 3] [--batches 100] [--batch-size 500]

Two scratch databases: one at `0009_telemetry_received_at` (the plain table, with its foreign
keys to batches, devices and trips), one at the head (partitioned by day, with the days around
today and the DEFAULT partition, as the worker's cron keeps them). In interleaved rounds, each
gets what ingest and the worker do per upload, on one asyncpg connection:

- ingest: in one transaction, the batch row and `--batch-size` events by COPY (rows/s);
- the worker's attach: `UPDATE ... SET trip_id ... RETURNING` of one batch's events, pruned on
  the partitioned table by the bounds the worker uses (`processing.RECEIVED_AT_SLACK`) (ms per
  batch).

Prints each figure per database and the partitioned one's ratio to the plain one. Informative:
no target, no verdict (the ingest and worker benchmarks hold the targets).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from benchlib import ScratchDatabase, insert_bench_devices, insert_bench_user, rotated
from scale_data import day_partitions

from tripline_worker.telemetry.processing import RECEIVED_AT_SLACK

PLAIN = "0009_telemetry_received_at"
COLUMNS = ("batch_id", "device_id", "recorded_at", "lat", "lon", "speed_kmh", "received_at")
ATTACH = """
UPDATE telemetry_events SET trip_id = $2
WHERE batch_id = $1 AND received_at >= $3 AND received_at <= now() + $4::interval
RETURNING recorded_at, lat, lon, speed_kmh, accuracy_m
"""


async def prepare(dsn: str, partitioned: bool) -> tuple[uuid.UUID, uuid.UUID]:
    """The bench user, one device with an active trip; the days around today when partitioned.
    Returns (device id, trip id)."""
    conn = await asyncpg.connect(dsn)
    try:
        if partitioned:  # The days around today, as the worker's cron keeps them.
            await conn.execute("DROP TABLE telemetry_events_legacy")
            await day_partitions(conn, -1, 7)
        user = await insert_bench_user(conn)
        [(device, _key)] = await insert_bench_devices(conn, user, 1)
        trip = await conn.fetchval(
            "INSERT INTO trips (owner_id, device_id, name, status, origin_lat, origin_lon,"
            " destination_lat, destination_lon, planned_start, planned_arrival, started_at)"
            " VALUES ($1, $2, 'Bench', 'active', 52.5, 13.4, 52.4, 13.2, now(),"
            " now() + interval '1 hour', now() - interval '1 hour') RETURNING id",
            user,
            device,
        )
        return device, trip
    finally:
        await conn.close()


async def one_round(
    dsn: str, device: uuid.UUID, trip: uuid.UUID, batches: int, size: int
) -> tuple[float, float]:
    """Ingest then attach `batches` batches; (events/s written, attach ms per batch)."""
    conn = await asyncpg.connect(dsn)
    try:
        made: list[tuple[uuid.UUID, datetime]] = []
        started = time.perf_counter()
        for _ in range(batches):
            batch, now = uuid.uuid4(), datetime.now(UTC)
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO telemetry_batches (id, device_id, event_count, received_at)"
                    " VALUES ($1, $2, $3, $4)",
                    batch,
                    device,
                    size,
                    now,
                )
                await conn.copy_records_to_table(
                    "telemetry_events",
                    columns=COLUMNS,
                    records=[
                        (batch, device, now - timedelta(seconds=size - i), 52.5, 13.4, 50.0, now)
                        for i in range(size)
                    ],
                )
            made.append((batch, now))
        written = batches * size / (time.perf_counter() - started)
        started = time.perf_counter()
        for batch, received_at in made:
            async with conn.transaction():
                await conn.fetch(
                    ATTACH,
                    batch,
                    trip,
                    received_at - RECEIVED_AT_SLACK,
                    RECEIVED_AT_SLACK,
                )
        attach_ms = (time.perf_counter() - started) * 1000 / batches
        return written, attach_ms
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    databases = {
        "plain (0009)": ScratchDatabase.create("partitions_plain", revision=PLAIN),
        "partitioned (head)": ScratchDatabase.create("partitions_head"),
    }
    try:
        subjects = {
            name: asyncio.run(prepare(db.dsn, partitioned=name.startswith("partitioned")))
            for name, db in databases.items()
        }
        written: dict[str, list[float]] = {name: [] for name in databases}
        attach: dict[str, list[float]] = {name: [] for name in databases}
        for round_number in range(args.rounds):
            for name in rotated(list(databases), round_number):
                device, trip = subjects[name]
                rate, ms = asyncio.run(
                    one_round(databases[name].dsn, device, trip, args.batches, args.batch_size)
                )
                written[name].append(rate)
                attach[name].append(ms)
        plain, head = list(databases)
        shape = f"{args.rounds} rounds x {args.batches} batches x {args.batch_size} events"
        print(f"\n{shape}, medians")
        print("| table | ingest (batch row + COPY), events/s | attach, ms per batch |")
        print("|---|---|---|")
        for name in databases:
            print(
                f"| {name} | {statistics.median(written[name]):,.0f}"
                f" | {statistics.median(attach[name]):.2f} |"
            )
        ratio_written = statistics.median(written[head]) / statistics.median(written[plain])
        ratio_attach = statistics.median(attach[head]) / statistics.median(attach[plain])
        print(f"| partitioned / plain | {ratio_written:.2f} | {ratio_attach:.2f} |")
        return 0
    finally:
        for db in databases.values():
            db.drop()


if __name__ == "__main__":
    raise SystemExit(main())
