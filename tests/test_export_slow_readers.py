"""Slow readers of the telemetry CSV export against a real `tripline-api` process.

The attack: more sockets than the API has pooled connections request a large export and never
read it. Today's export pages through the raw pool, releasing the connection before each page
is sent, so the stuck downloads hold sockets, not connections: other users keep being served,
and no connection sits idle in a transaction.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.seed import DEMO_PASSWORD
from tests.test_processes import seed
from tripline_common.data import asyncpg_dsn

STUCK = 6  # More than the API's connections: 2 pooled (ORM) + 2 raw.
ROWS = 200_000  # ~9 MB of CSV: more than a loopback socket buffers (4 MB + 4 KB).
POOLS = {
    "DB_POOL_SIZE": "2",
    "DB_MAX_OVERFLOW": "0",
    "DB_POOL_TIMEOUT": "2",
    "DB_FAST_POOL_SIZE": "2",
    "TELEMETRY_EXPORT_MAX_PER_USER": str(STUCK),
}


async def store_long_trip(database_url: str) -> uuid.UUID:
    """The demo trip, with `ROWS` fixes."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            trip_id, device_id = (
                await conn.execute(
                    text(
                        "SELECT t.id, t.device_id FROM trips t JOIN users u ON u.id = t.owner_id "
                        "WHERE u.email = 'demo@tripline.dev'"
                    )
                )
            ).one()
        async with engine.begin() as conn:
            batch_id = uuid.uuid4()
            await conn.execute(
                text(
                    "INSERT INTO telemetry_batches (id, device_id, event_count) VALUES (:i, :d, :n)"
                ),
                {"i": batch_id, "d": device_id, "n": ROWS},
            )
            await conn.execute(
                text(
                    "INSERT INTO telemetry_events"
                    " (batch_id, device_id, trip_id, recorded_at, lat, lon)"
                    " SELECT :b, :d, :t, CAST(:t0 AS timestamptz) + make_interval(secs => g),"
                    " 52 + g / 1e6, 13"
                    " FROM generate_series(1, :n) g"
                ),
                {"b": batch_id, "d": device_id, "t": trip_id, "t0": datetime.now(UTC), "n": ROWS},
            )
    finally:
        await engine.dispose()
    return uuid.UUID(str(trip_id))


def token_for(api_url: str, email: str) -> str:
    response = httpx.post(
        f"{api_url}/v1/auth/token",
        data={"username": email, "password": DEMO_PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def stuck_download(port: int, path: str, token: str) -> socket.socket:
    """A socket that requests `path`, reads the response head, and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed the connection"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


async def idle_in_transaction(database_url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
        )
        return count
    finally:
        await conn.close()


async def test_downloads_that_never_read_hold_no_connection(processes, process_env) -> None:
    seed(process_env)
    trip_id = await store_long_trip(process_env["DATABASE_URL"])
    api = processes.start("api", "tripline-api", **POOLS)
    processes.wait_ready(api)
    demo = token_for(api.url, "demo@tripline.dev")
    path = f"/v2/trips/{trip_id}/telemetry.csv"

    stuck = [stuck_download(api.port, path, demo) for _ in range(STUCK)]
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
            # Beyond the user's bound: refused at once, in the shared shape.
            refused = await client.get(path, headers={"Authorization": f"Bearer {demo}"})
            assert refused.status_code == 429
            assert refused.json()["code"] == "too_many_exports"

            # Another user is served, reads (raw pool) and writes (ORM pool) alike, repeatedly.
            other = {"Authorization": f"Bearer {token_for(api.url, 'operator@tripline.dev')}"}
            for _ in range(3):
                me = await client.get("/v1/users/me", headers=other)
                assert me.status_code == 200, me.text
                created = await client.post(
                    "/v2/trips",
                    headers=other,
                    json={
                        "name": "While exports are stuck",
                        "origin": {"lat": 52.52, "lon": 13.405},
                        "destination": {"lat": 52.39, "lon": 13.06},
                        "planned_start": "2030-01-01T08:00:00Z",
                        "planned_arrival": "2030-01-01T09:00:00Z",
                    },
                )
                assert created.status_code == 201, created.text
                assert await idle_in_transaction(process_env["DATABASE_URL"]) == 0
    finally:
        for sock in stuck:
            sock.close()
    # Once the stuck clients go away, their slots are given back.
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
        deadline = asyncio.get_running_loop().time() + 20
        while (
            await client.get(path, headers={"Authorization": f"Bearer {demo}"})
        ).status_code == 429:
            assert asyncio.get_running_loop().time() < deadline, "the slots were never released"
            await asyncio.sleep(0.2)
