"""The telemetry pipeline end to end, with real processes: a device's upload becomes an alert,
delivered to a webhook receiver (a real HTTP server on 127.0.0.1), signed and carrying the
upload's correlation ID, which every process logged along the way.

The helpers here are shared with tests/test_faults.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import BIN, ROOT, Process
from tests.support.database import fetch
from tripline_common.data import asyncpg_dsn
from tripline_common.messaging import verify_signature

SECRET = "whsec_pipeline-test-secret"
# The demo trip (scripts/seed.py) runs from here, with an 80 km/h limit.
ORIGIN = (52.5200, 13.4050)
WANNSEE = (52.4560, 13.2900)

# Fast retries and sweeps, so that recovery fits in a test.
FAST_WORKER = {
    "SWEEP_INTERVAL_SECONDS": "1",
    "BATCH_REQUEUE_AFTER_SECONDS": "2",
    "DELIVERY_REQUEUE_AFTER_SECONDS": "2",
    "WEBHOOK_BACKOFF_BASE_SECONDS": "0.3",
    "WEBHOOK_BACKOFF_MAX_SECONDS": "2",
    "RESTART_MAX_DELAY": "1",
    # `start_demo_trip` starts the trip 10 minutes ago with no fix yet: exactly the default
    # silence (600 s) after which the lost-signal cron raises an alert, so a cron run a few
    # seconds into a test would add an alert (and a webhook delivery) the test did not make.
    "LOST_SIGNAL_AFTER_SECONDS": "3600",
}


def seed(env: dict[str, str]) -> None:
    """The demo data: users, a device with a known key, a planned trip with waypoints."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed.py")], env=env, check=True, timeout=60
    )


async def start_demo_trip(database_url: str, webhook_url: str | None = None) -> dict[str, Any]:
    """Make the demo trip active (started 10 minutes ago); optionally give its owner a webhook
    endpoint. Returns the trip's ids."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        trip = await conn.fetchrow(
            "UPDATE trips SET status = 'active', started_at = now() - interval '10 minutes'"
            " RETURNING id, owner_id, device_id"
        )
        if webhook_url:
            await conn.execute(
                "INSERT INTO webhook_endpoints (owner_id, url, secret) VALUES ($1, $2, $3)",
                trip["owner_id"],
                webhook_url,
                SECRET,
            )
    finally:
        await conn.close()
    return dict(trip)


async def start_trip_through_api(
    client: httpx.AsyncClient, api: str, auth: dict[str, str], name: str, webhook_url: str
) -> tuple[str, str]:
    """Through the API as a user would: a device, an active trip on it from `ORIGIN` to
    `WANNSEE` with an 80 km/h limit, and a webhook endpoint at `webhook_url`; returns the
    device's API key and the trip's ID."""
    device = await client.post(f"{api}/v1/devices", json={"name": "Van 7"}, headers=auth)
    assert device.status_code == 201, device.text
    start = datetime.now(UTC)
    trip = await client.post(
        f"{api}/v1/trips",
        json={
            "name": name,
            "device_id": device.json()["id"],
            "planned_start": start.isoformat(),
            "planned_arrival": (start + timedelta(hours=2)).isoformat(),
            "speed_limit_kmh": 80,
            "origin_lat": ORIGIN[0],
            "origin_lon": ORIGIN[1],
            "destination_lat": WANNSEE[0],
            "destination_lon": WANNSEE[1],
        },
        headers=auth,
    )
    assert trip.status_code == 201, trip.text
    trip_id = str(trip.json()["id"])
    active = await client.patch(
        f"{api}/v1/trips/{trip_id}", json={"status": "active"}, headers=auth
    )
    assert active.status_code == 200, active.text
    hook = await client.post(f"{api}/v1/webhooks", json={"url": webhook_url}, headers=auth)
    assert hook.status_code == 201, hook.text
    return str(device.json()["api_key"]), trip_id


def window_aligned(window_seconds: int = 300) -> datetime:
    """A moment 5 to 10 minutes ago, within the demo trip: fixes from there, for less than the
    alert window (300 s), raise one alert per rule."""
    now = int(datetime.now(UTC).timestamp())
    return datetime.fromtimestamp(now - now % window_seconds - window_seconds + 1, UTC)


def fixes(n: int, *, start: datetime, speed_kmh: float = 50.0, step_s: int = 5) -> list[dict]:
    """`n` fixes along the start of the demo route."""
    return [
        {
            "recorded_at": (start + timedelta(seconds=i * step_s)).isoformat(),
            "lat": ORIGIN[0] + (WANNSEE[0] - ORIGIN[0]) * i / 200,
            "lon": ORIGIN[1] + (WANNSEE[1] - ORIGIN[1]) * i / 200,
            "speed_kmh": speed_kmh,
            "accuracy_m": 5.0,
        }
        for i in range(n)
    ]


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float, what: str = "condition"
) -> Any:
    """Poll an async predicate until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(0.1)


def json_lines(process: Process) -> list[dict]:
    lines = []
    for line in process.log_lines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by SIGKILL
    return lines


def logged(process: Process, event: str, **fields: Any) -> list[dict]:
    return [
        line
        for line in json_lines(process)
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
    ]


@pytest.mark.slow
async def test_a_speeding_device_reaches_the_webhook_signed_with_its_correlation_id(
    processes, process_env, webhook_receiver
) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    trip = await start_demo_trip(database_url, webhook_receiver.url)
    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)

    request_id = f"e2e-{uuid.uuid4().hex}"
    batch = {
        "client_batch_id": "e2e-1",
        "events": fixes(6, start=window_aligned(), speed_kmh=112),
    }
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(
            f"{ingest.url}/v1/telemetry",
            json=batch,
            headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": request_id},
        )
        assert response.status_code == 202, response.text
        batch_id = response.json()["batch_id"]

        async def delivered() -> list:
            return webhook_receiver.delivered()

        [delivery] = await wait_for(delivered, 20, "a webhook delivery")
        status = await client.get(
            f"{ingest.url}/v1/batches/{batch_id}", headers={"X-Device-Key": DEMO_DEVICE_KEY}
        )

    # The receiver's view: signed, with the correlation ID, about this trip's speeding.
    headers = delivery.headers
    assert verify_signature(
        SECRET, delivery.body, headers["X-Tripline-Timestamp"], headers["X-Tripline-Signature"]
    )
    assert headers["X-Request-ID"] == request_id
    body = json.loads(delivery.body)
    assert body["type"] == "alert.raised"
    alert = body["alert"]
    assert (alert["rule"], alert["trip_id"]) == ("speeding", str(trip["id"]))
    assert alert["request_id"] == request_id and alert["details"]["speed_kmh"] == 112
    assert status.json()["status"] == "processed"

    # The database's view: one alert, delivered once.
    [row] = await fetch(
        database_url,
        "SELECT d.status, d.attempts, a.request_id FROM webhook_deliveries d"
        " JOIN alerts a ON a.id = d.alert_id",
    )
    assert (row["status"], row["attempts"], row["request_id"]) == ("delivered", 1, request_id)
    events = await fetch(
        database_url,
        "SELECT trip_id FROM telemetry_events WHERE batch_id = $1",
        uuid.UUID(batch_id),
    )
    assert len(events) == 6 and {e["trip_id"] for e in events} == {trip["id"]}

    # One grep of the ID tells the story across both processes.
    assert logged(ingest, "request", request_id=request_id, status=202)
    assert logged(ingest, "job_enqueued", request_id=request_id, job="process_batch")
    assert logged(worker, "batch_processed", request_id=request_id, batch_id=batch_id)
    assert logged(worker, "alert_raised", request_id=request_id, rule="speeding")
    assert logged(worker, "webhook_delivered", request_id=request_id, job="deliver_webhook")


@pytest.mark.slow
async def test_worker_check_is_arqs_health_check_for_this_worker(processes, process_env) -> None:
    """`tripline-worker-check` (an exec probe) passes while this worker's loop runs, and fails
    for a worker name whose loop does not run, even though another worker is healthy."""
    worker = processes.start("worker", "tripline-worker", WORKER_NAME="worker-a")
    processes.wait_ready(worker)

    def check(name: str) -> int:
        return subprocess.run(
            [str(BIN / "tripline-worker-check")],
            env={**process_env, "WORKER_NAME": name},
            capture_output=True,
            timeout=30,
        ).returncode

    assert check("worker-a") == 0
    assert check("worker-b") == 1
    worker.stop()
    assert check("worker-a") == 1  # The health key goes with a clean shutdown.
