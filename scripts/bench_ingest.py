"""Benchmark: `POST /v1/telemetry` against a bare asyncpg COPY loop of the same rows, untraced and
traced, in one run.

    uv run python scripts/bench_ingest.py [--duration 10] [--rounds 3] [--connections 16]
                                          [--batch-size 500] [--devices 32] [--gzip]
                                          [--baseline-connections 1,15]

Needs `wrk` (Debian: `apt-get install wrk`) and Postgres/Redis (found or started like `make
dev` does). It builds a scratch database with the real migrations and a set of devices, then
measures, in interleaved rounds (so machine drift hits them alike; the three ingest processes
in an order that moves each round), with the telemetry tables emptied before each measurement:

- baselines: asyncpg connections calling `copy_records_to_table` in a loop with the same
  500-row batches, nothing else (no HTTP, no parsing, no batch row, no queue): one connection,
  and as many connections as ingest itself can use at once (its SQLAlchemy pool,
  `DB_POOL_SIZE` + `DB_MAX_OVERFLOW` of `IngestSettings`: 15 by default; `--baseline-connections`
  overrides the list); ingest is compared with the best of them;
- the real `tripline-ingest` process (one uvicorn worker, the whole middleware stack, a JSON
  log line per request), driven by wrk with a Lua script that cycles through pre-built
  batches of the devices: key lookup (cached), rate limit (Redis), raw-body validation, batch
  row + COPY in one transaction, enqueue after commit; three times: untraced, traced at the
  default sampler (parent-based, one trace in ten: wrk sends no `traceparent`) and traced at
  100%, the traced ones exporting over OTLP/HTTP to a real receiver on 127.0.0.1
  (`tripline_devstack.DevTraceCollector`).

After each ingest run it checks that every 202 is in Postgres (events = 202s x batch size).
Targets (issue 4): untraced, >= 25,000 events/s and >= 50% of the best baseline's rows/s. Issue
13: traced at the default sampler, >= 75% of it; the 100% figures are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis
from benchlib import (
    ScratchDatabase,
    Service,
    backend_cpu_seconds,
    cpu_seconds,
    have_wrk,
    insert_bench_devices,
    insert_bench_user,
    parse_wrk,
    rotated,
    spans_dropped,
    spans_received,
    spread,
    start_service,
    stop,
    tracing_variants,
    verdict,
    wrk_command,
)

from tripline_devstack import DevTraceCollector
from tripline_ingest.settings import IngestSettings
from tripline_ingest.telemetry.service import EVENT_COLUMNS  # the baseline COPYs as ingest does

LUA = r"""
-- Cycles through pre-built requests: one body and device key per line of the data file.
local requests = {}
local i = 0

init = function(args)
  for line in io.lines(args[1]) do
    local key, path = line:match("^(%S+) (%S+)$")
    local file = io.open(path, "rb")
    local body = file:read("*a")
    file:close()
    local headers = {["X-Device-Key"] = key, ["Content-Type"] = "application/json"}
    if args[2] == "gzip" then headers["Content-Encoding"] = "gzip" end
    requests[#requests + 1] = wrk.format("POST", "/v1/telemetry", headers, body)
  end
end

request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


@dataclass
class Result:
    events_per_s: float
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    cpu_us: float = 0.0
    """The ingest process's CPU per request (per batch), in µs."""
    cpu_s: float = 0.0
    """A baseline's CPU time, client and backends, when asked for."""


def make_events(n: int, start: datetime, device: int) -> list[dict[str, object]]:
    return [
        {
            "recorded_at": (start + timedelta(seconds=i)).isoformat(),
            "lat": round(52.52 - i * 1e-4 + device * 1e-3, 6),
            "lon": round(13.40 - i * 1e-4, 6),
            "speed_kmh": 40.0 + i % 50,
            "heading_deg": float(i % 360),
            "accuracy_m": 5.0,
        }
        for i in range(n)
    ]


async def prepare(dsn: str, devices: int) -> list[tuple[uuid.UUID, str]]:
    """A user and `devices` devices; returns (device id, key) pairs."""
    conn = await asyncpg.connect(dsn)
    try:
        return await insert_bench_devices(conn, await insert_bench_user(conn), devices)
    finally:
        await conn.close()


async def empty_tables(dsn: str) -> None:
    """Empty the telemetry tables, once ingest has finished what wrk left in flight."""
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(100):
            busy = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ingest'"
                " AND state <> 'idle'"
            )
            if not busy:
                break
            await asyncio.sleep(0.1)
        await conn.execute("TRUNCATE telemetry_events, telemetry_batches")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def ingest_connections() -> int:
    """How many database connections one ingest process can use at once: its SQLAlchemy pool
    and the pool's overflow, as `IngestSettings` sets them by default."""
    fields = IngestSettings.model_fields
    return int(fields["db_pool_size"].default) + int(fields["db_max_overflow"].default)


async def baseline(
    dsn: str,
    devices: list[tuple[uuid.UUID, str]],
    batches: list[list[dict[str, Any]]],
    duration: float,
    connections: int = 1,
    *,
    cpu: bool = False,
) -> Result:
    """Rows/s of bare `copy_records_to_table` loops, 500 rows per call, on `connections`
    connections at once (each its own loop, all for `duration` seconds); with `cpu`, also the
    CPU time this process and the connections' backends spent in them (`Result.cpu_s`)."""
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    try:
        received_at = datetime.now(UTC)  # As ingest writes it: the batch's own time.
        batch_ids = []
        for device_id, _ in devices:
            batch_ids.append(
                await conns[0].fetchval(
                    "INSERT INTO telemetry_batches (device_id, event_count, received_at)"
                    " VALUES ($1, 0, $2) RETURNING id",
                    device_id,
                    received_at,
                )
            )
        records = [
            [
                (
                    batch_ids[n],
                    devices[n][0],
                    datetime.fromisoformat(e["recorded_at"]),
                    e["lat"],
                    e["lon"],
                    e["speed_kmh"],
                    e["heading_deg"],
                    e["accuracy_m"],
                    received_at,
                )
                for e in events
            ]
            for n, events in enumerate(batches)
        ]
        used = time.process_time() + backend_cpu_seconds(conns) if cpu else 0.0
        started = time.perf_counter()

        async def loop(conn: asyncpg.Connection, first: int) -> int:
            rows, i = 0, first
            while time.perf_counter() - started < duration:
                batch = records[i % len(records)]
                await conn.copy_records_to_table(
                    "telemetry_events", records=batch, columns=EVENT_COLUMNS
                )
                rows += len(batch)
                i += connections
            return rows

        rows = sum(await asyncio.gather(*(loop(conn, k) for k, conn in enumerate(conns))))
        elapsed = time.perf_counter() - started
        if cpu:
            used = time.process_time() + backend_cpu_seconds(conns) - used
        return Result(events_per_s=rows / elapsed, cpu_s=used)
    finally:
        for conn in conns:
            await conn.close()


def baseline_name(connections: int) -> str:
    return f"COPY x{connections}"


def run_wrk(url: str, script: Path, data: Path, connections: int, duration: int, gz: bool) -> str:
    command = [
        *wrk_command(connections, duration),
        "-s", str(script), url, "--", str(data), "gzip" if gz else "plain",
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603


def tripline_result(output: str, batch_size: int, cpu: float) -> Result:
    """wrk's figures, with events/s counted from requests/s at `batch_size` events each, and
    the ingest process's `cpu` seconds spread over the requests."""
    stats = parse_wrk(output)
    return Result(
        events_per_s=stats.rps * batch_size,
        requests_per_s=stats.rps,
        p50_ms=stats.p50_ms,
        p99_ms=stats.p99_ms,
        errors=stats.errors,
        cpu_us=cpu / max(stats.requests, 1) * 1e6,
    )


async def stored_events(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        batches = await conn.fetchval("SELECT count(*) FROM telemetry_batches")
        events = await conn.fetchval("SELECT count(*) FROM telemetry_events")
        return batches, events
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch")
    parser.add_argument("--devices", type=int, default=32, help="devices (and distinct bodies)")
    parser.add_argument("--gzip", action="store_true", help="send gzip-compressed bodies")
    parser.add_argument(
        "--baseline-connections",
        default=f"1,{ingest_connections()}",
        help="COPY baselines to measure, by connections (default: 1 and ingest's pool)",
    )
    args = parser.parse_args()
    base_connections = [int(n) for n in args.baseline_connections.split(",")]
    if not have_wrk():
        return 2

    database = ScratchDatabase.create("ingest")
    dsn = database.dsn
    queue = f"tripline:bench:{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    services: dict[str, Service] = {}
    try:
        devices = asyncio.run(prepare(dsn, args.devices))
        start = datetime.now(UTC) - timedelta(hours=1)
        batches = [make_events(args.batch_size, start, n) for n in range(args.devices)]
        lines = []
        for n, ((_, key), events) in enumerate(zip(devices, batches, strict=True)):
            body = orjson.dumps({"events": events})
            path = workdir / f"body-{n}.json"
            path.write_bytes(gzip.compress(body) if args.gzip else body)
            lines.append(f"{key} {path}")
        data = workdir / "requests.txt"
        data.write_text("\n".join(lines) + "\n")
        script = workdir / "post.lua"
        script.write_text(LUA)
        body_size = (workdir / "body-0.json").stat().st_size

        env = database.service_env(
            ARQ_QUEUE_NAME=queue,  # Nobody consumes it: ingest alone is measured.
            DEVICE_RATE_LIMIT="100000000",
        )
        with DevTraceCollector() as collector:
            variants = tracing_variants(collector, "ingest")
            for variant in variants:
                services[variant.name] = start_service(
                    "tripline-ingest",
                    {**env, **variant.env},
                    workdir,
                    name=f"ingest {variant.name}",
                )
            print(
                f"{args.devices} devices, batches of {args.batch_size} events "
                f"({body_size} bytes{' gzip' if args.gzip else ''}), wrk -c{args.connections}, "
                f"{args.duration}s x {args.rounds} rounds",
                flush=True,
            )
            for service in services.values():  # Warm up.
                run_wrk(service.url, script, data, args.connections, 2, args.gzip)

            bases = [baseline_name(n) for n in base_connections]
            results: dict[str, list[Result]] = {name: [] for name in (*bases, *services)}
            errors = 0
            for round_number in range(1, args.rounds + 1):
                for connections in rotated(base_connections, round_number):
                    asyncio.run(empty_tables(dsn))
                    base = asyncio.run(baseline(dsn, devices, batches, args.duration, connections))
                    results[baseline_name(connections)].append(base)
                    print(
                        f"round {round_number} {baseline_name(connections):<12} "
                        f"{base.events_per_s:9.0f} rows/s",
                        flush=True,
                    )
                for name in rotated(list(services), round_number):
                    service = services[name]
                    asyncio.run(empty_tables(dsn))
                    cpu = cpu_seconds(service.process.pid)
                    output = run_wrk(
                        service.url, script, data, args.connections, args.duration, args.gzip
                    )
                    cpu = cpu_seconds(service.process.pid) - cpu
                    result = tripline_result(output, args.batch_size, cpu)
                    time.sleep(1)  # Requests wrk abandoned at the end may still commit.
                    stored_batches, stored = asyncio.run(stored_events(dsn))
                    if stored != stored_batches * args.batch_size:
                        print(f"bench: {stored_batches} batches but {stored} events stored")
                        errors += 1
                    errors += result.errors
                    results[name].append(result)
                    print(
                        f"round {round_number} {name:<12} {result.events_per_s:9.0f} events/s "
                        f"({result.requests_per_s:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
                        f"p99 {result.p99_ms:.1f} ms, {result.cpu_us / 1000:.2f} ms CPU/req, "
                        f"non-2xx/socket errors {result.errors}; "
                        f"{stored_batches} batches stored)",
                        flush=True,
                    )
            time.sleep(6)  # One more export interval: the last queued spans are sent.
            print("\nspans the receiver got, spans dropped before export")
            for variant in variants[1:]:
                print(
                    f"{variant.name:<12} {spans_received(collector, variant):9d} received  "
                    f"dropped {spans_dropped(services[variant.name])}"
                )
        return report(results, errors, bases, [v.name for v in variants])
    finally:
        for service in services.values():
            stop(service.process)
        with redis.Redis.from_url(database.redis_url) as client:
            client.delete(queue)
            for key in client.scan_iter("arq:job:process_batch:*", count=1000):
                client.delete(key)
        shutil.rmtree(workdir, ignore_errors=True)
        database.drop()


def report(
    results: dict[str, list[Result]], errors: int, bases: list[str], variants: list[str]
) -> int:
    def events(name: str) -> float:
        return statistics.median(r.events_per_s for r in results[name])

    best_name = max(bases, key=events)
    base = events(best_name)
    # Each round's ratio against the best baseline's figure of the same round.
    best_of_round = [
        max(results[name][n].events_per_s for name in bases) for n in range(len(results[best_name]))
    ]
    print("\nmedians       events/s  of best COPY (rounds)  req/s  CPU/req   p50 ms   p99 ms")
    for name in bases:
        print(
            f"{name:<12} {events(name):9.0f}  {events(name) / base:5.0%}  (rows/s of bare COPY "
            f"loops on {name.removeprefix('COPY x')} connection(s))"
        )
    for name in variants:
        rounds = [
            ours.events_per_s / theirs
            for ours, theirs in zip(results[name], best_of_round, strict=True)
        ]
        print(
            f"{name:<12} {events(name):9.0f}  {events(name) / base:5.0%} ({spread(rounds):>7})  "
            f"{statistics.median(r.requests_per_s for r in results[name]):5.0f} "
            f"{statistics.median(r.cpu_us for r in results[name]) / 1000:5.2f} ms "
            f"{statistics.median(r.p50_ms for r in results[name]):8.1f} "
            f"{statistics.median(r.p99_ms for r in results[name]):8.1f}"
        )
    print(
        "  ("
        + ", ".join(f"{name}: {events(variants[0]) / events(name):.0%}" for name in bases)
        + f" is {variants[0]} against each baseline)"
    )
    untraced, traced, traced_all = variants
    print(
        f"\n{traced_all} (no target): {events(traced_all) / base:.0%} of the best COPY, "
        f"{events(traced_all) / events(untraced):.0%} of {untraced}"
    )
    checks = [
        (
            f"{untraced}: {events(untraced):.0f} events/s (target >= 25,000)",
            events(untraced) >= 25_000,
        ),
        (
            f"{untraced}: {events(untraced) / base:.0%} of the best COPY, {best_name} "
            f"(target >= 50%)",
            events(untraced) / base >= 0.5,
        ),
        (
            f"{traced}: {events(traced) / base:.0%} of the best COPY (target >= 75%; "
            f"{events(traced) / events(untraced):.0%} of {untraced})",
            events(traced) / base >= 0.75,
        ),
        (f"errors: {errors} (target 0)", errors == 0),
    ]
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
