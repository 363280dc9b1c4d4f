"""Benchmark: authenticated `GET /v1/trips/{id}` against a raw asyncpg baseline, in one run.

    uv run python scripts/bench_api.py [--duration 10] [--rounds 3] [--connections 32 256]

Needs `wrk` (Debian: `apt-get install wrk`) and Postgres/Redis (found or started like `make
dev` does). It builds a scratch database with the real migrations, stores a user, a session and
a trip with waypoints, then starts two servers with identical uvicorn settings (one worker,
uvloop, httptools, no access log):

- baseline: `scripts/bench_baseline.py`, a bare FastAPI endpoint doing one raw asyncpg
  primary-key SELECT of the same trip;
- tripline: the real `tripline-api` (token check, session check, ownership, trip + waypoints,
  the whole middleware stack, a JSON log line per request).

Rounds interleave baseline and tripline so machine drift hits both alike; the figures are
medians over rounds. These machines are shared and noisy: read the ratios, not the absolutes.
Targets (issue 3): tripline ≥ 60% of the baseline's requests/s with p99 ≤ 2x the baseline's at
32 connections, no errors; at 256 connections no errors and throughput within 20% of its
32-connection figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from benchlib import (
    BIN,
    ROOT,
    SECRET,
    ScratchDatabase,
    WrkStats,
    have_wrk,
    insert_bench_user,
    parse_wrk,
    verdict,
    wrk_command,
)

from tripline_common.platform import CommonSettings
from tripline_common.security import create_access_token
from tripline_devstack import free_port


def wrk(url: str, connections: int, duration: int, token: str | None) -> WrkStats:
    command = wrk_command(connections, duration)
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True)  # noqa: S603
    return parse_wrk(done.stdout)


async def prepare(database_url: str) -> tuple[str, str]:
    """Store a user, a live session, a trip with 5 waypoints; return (trip id, access token)."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        user_id = await insert_bench_user(conn)
        session_id = await conn.fetchval(
            "INSERT INTO auth_sessions (user_id, expires_at) "
            "VALUES ($1, now() + interval '1 day') RETURNING id",
            user_id,
        )
        start = datetime.now(UTC) + timedelta(hours=1)
        trip_id = await conn.fetchval(
            "INSERT INTO trips (owner_id, name, origin_lat, origin_lon, destination_lat, "
            "destination_lon, planned_start, planned_arrival, speed_limit_kmh, corridor_m) "
            "VALUES ($1, 'Bench trip', 52.52, 13.40, 52.39, 13.06, $2, $3, 80, 500) RETURNING id",
            user_id,
            start,
            start + timedelta(hours=1),
        )
        await conn.executemany(
            "INSERT INTO waypoints (trip_id, seq, lat, lon, name) VALUES ($1, $2, $3, $4, $5)",
            [(trip_id, i, 52.5 - i / 100, 13.4 - i / 100, f"Stop {i}") for i in range(5)],
        )
    finally:
        await conn.close()
    settings = CommonSettings(
        _env_file=None,
        secret_key=SECRET,
        access_token_ttl_seconds=86_400,
    )
    token = create_access_token(settings, user_id=user_id, session_id=session_id, role="user")
    return str(trip_id), token


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 - our own fixed command lines
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server {command} did not start on port {port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    if not have_wrk():
        return 2

    database = ScratchDatabase.create("api")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        trip_id, token = asyncio.run(prepare(database.url))
        env = database.service_env()
        base_port, api_port = free_port(), free_port()
        uvicorn = [str(BIN / "uvicorn"), "--no-access-log", "--log-level", "warning"]
        processes.append(
            start(
                [*uvicorn, "--app-dir", "scripts", "bench_baseline:app", "--port", str(base_port)],
                env,
                base_port,
            )
        )
        processes.append(
            start(
                [str(BIN / "tripline-api")],
                {**env, "PORT": str(api_port), "OPS_PORT": str(free_port())},
                api_port,
            )
        )
        targets = {
            "baseline": (f"http://127.0.0.1:{base_port}/trips/{trip_id}", None),
            "tripline": (f"http://127.0.0.1:{api_port}/v1/trips/{trip_id}", token),
        }
        check = httpx.get(targets["tripline"][0], headers={"Authorization": f"Bearer {token}"})
        if check.status_code != 200:
            print(f"bench: GET /v1/trips/{{id}} answered {check.status_code}: {check.text}")
            return 1
        for url, auth in targets.values():  # Warm both up.
            wrk(url, 32, 2, auth)

        results: dict[tuple[str, int], list[WrkStats]] = {}
        for round_number in range(1, args.rounds + 1):
            for connections in args.connections:
                for name, (url, auth) in targets.items():
                    result = wrk(url, connections, args.duration, auth)
                    results.setdefault((name, connections), []).append(result)
                    print(
                        f"round {round_number} {name:<8} c={connections:<4} "
                        f"{result.rps:8.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
                        f"p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                        flush=True,
                    )
        return report(results, args.connections)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)
        database.drop()


def report(results: dict[tuple[str, int], list[WrkStats]], connections: list[int]) -> int:
    def median(name: str, c: int, field: str) -> float:
        values: list[float] = [getattr(r, field) for r in results[(name, c)]]
        return statistics.median(values)

    print("\nmedians            req/s      p50 ms     p99 ms   errors")
    for c in connections:
        for name in ("baseline", "tripline"):
            errors = sum(r.errors for r in results[(name, c)])
            print(
                f"{name:<8} c={c:<4} {median(name, c, 'rps'):9.0f} "
                f"{median(name, c, 'p50_ms'):10.2f} {median(name, c, 'p99_ms'):10.2f} {errors:8d}"
            )
    low, high = min(connections), max(connections)
    ratio = median("tripline", low, "rps") / median("baseline", low, "rps")
    p99_ratio = median("tripline", low, "p99_ms") / median("baseline", low, "p99_ms")
    hold = median("tripline", high, "rps") / median("tripline", low, "rps")
    errors = sum(r.errors for (name, _), rs in results.items() if name == "tripline" for r in rs)
    checks = [
        (f"throughput at c={low}: {ratio:.0%} of baseline (target >= 60%)", ratio >= 0.6),
        (f"p99 at c={low}: {p99_ratio:.2f}x baseline (target <= 2x)", p99_ratio <= 2),
        (f"throughput at c={high}: {hold:.0%} of c={low} (target >= 80%)", hold >= 0.8),
        (f"errors: {errors} (target 0)", errors == 0),
    ]
    print()
    return verdict(checks)


if __name__ == "__main__":
    sys.exit(main())
