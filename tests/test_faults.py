"""Real faults injected into the running pipeline: Redis stopped, the worker SIGKILLed mid-batch,
Postgres restarted under load, a webhook receiver down then back.

Each fault that stops a server does it to a server the test started itself on a spare port
(tripline_devstack), so nothing else running on the machine is disturbed. Every wait is bounded.
Assertions are about what must hold whatever the timing: nothing acknowledged is lost, nothing
is processed twice, no alert is raised twice.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ProcessRunner
from tests.test_pipeline import (
    FAST_WORKER,
    SECRET,
    fetch,
    fixes,
    json_lines,
    logged,
    seed,
    start_demo_trip,
    wait_for,
    window_aligned,
)
from tripline_common.data import asyncpg_dsn
from tripline_common.messaging import verify_signature
from tripline_common.migrations.runner import upgrade
from tripline_devstack import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_key() -> str:
    from scripts.seed import DEMO_DEVICE_KEY

    return DEMO_DEVICE_KEY


async def post_batch(
    client: httpx.AsyncClient, url: str, key: str, batch: dict[str, Any], request_id: str
) -> httpx.Response:
    return await client.post(
        f"{url}/v1/telemetry", json=batch, headers={"X-Device-Key": key, "X-Request-ID": request_id}
    )


async def batches(database_url: str) -> dict[str, asyncpg.Record]:
    rows = await fetch(
        database_url,
        "SELECT id, client_batch_id, status, attempts, event_count FROM telemetry_batches",
    )
    return {str(row["id"]): row for row in rows}


def processed_once_each(worker_logs: list[dict], batch_ids: set[str]) -> dict[str, int]:
    """How many times the worker logs say each batch was processed."""
    counts = dict.fromkeys(batch_ids, 0)
    for line in worker_logs:
        if line.get("event") == "batch_processed" and line.get("batch_id") in counts:
            counts[line["batch_id"]] += 1
    return counts


# --- Redis stopped while devices keep posting ------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis", port=free_port()) as server:
        yield server


async def test_redis_outage_loses_nothing_and_processes_each_batch_once(
    processes: ProcessRunner, process_env: dict[str, str], own_redis: EmbeddedRedis, demo_key: str
) -> None:
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    await start_demo_trip(database_url)
    redis_env = {"REDIS_URL": own_redis.url(), "REDIS_TIMEOUT": "1"}
    ingest = processes.start("ingest", "tripline-ingest", **redis_env)
    worker = processes.start("worker", "tripline-worker", **redis_env, **FAST_WORKER)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)
    start = datetime.now(UTC) - timedelta(minutes=5)
    accepted: dict[str, str] = {}  # batch id -> request id

    async def post(client: httpx.AsyncClient, n: int) -> httpx.Response:
        request_id = f"redis-fault-{n}"
        batch = {
            "client_batch_id": f"r-{n}",
            "events": fixes(5, start=start + timedelta(seconds=25 * n), speed_kmh=60),
        }
        response = await post_batch(client, ingest.url, demo_key, batch, request_id)
        if response.status_code == 202:
            accepted[response.json()["batch_id"]] = request_id
        return response

    async with httpx.AsyncClient(timeout=10) as client:
        for n in range(3):
            assert (await post(client, n)).status_code == 202

        own_redis.stop()
        outage_started = time.monotonic()
        for n in range(3, 10):
            response = await post(client, n)
            # Stored in Postgres, so acknowledged; never a 5xx for a batch that was stored.
            assert response.status_code == 202, response.text
        assert time.monotonic() - outage_started < 10  # Redis' absence costs no timeouts.
        ready = await client.get(f"{ingest.ops_url}/readyz")
        assert ready.status_code == 503 and ready.json()["details"]["checks"]["redis"] != "ok"
        stored = await batches(database_url)
        assert set(accepted) <= set(stored)  # Nothing acknowledged that is not stored.

        own_redis.start()  # Same port, empty: the queue's contents are gone.

        async def all_processed() -> bool:
            rows = await batches(database_url)
            return all(rows[batch_id]["status"] == "processed" for batch_id in accepted)

        await wait_for(all_processed, 30, "every accepted batch processed")
        assert (await client.get(f"{worker.ops_url}/readyz")).status_code == 200

    rows = await batches(database_url)
    assert len(rows) == len(accepted) == 10
    assert all(row["attempts"] == 1 and row["event_count"] == 5 for row in rows.values())
    counts = processed_once_each(worker_logs := json_lines(worker), set(accepted))
    assert set(counts.values()) == {1}, counts
    # The batches queued during the outage were found by the sweeper, under their own IDs.
    for batch_id, request_id in accepted.items():
        assert logged_from(worker_logs, "batch_processed", batch_id=batch_id)[0]["request_id"] == (
            request_id
        )
    [attached] = await fetch(
        database_url, "SELECT count(*) FROM telemetry_events WHERE trip_id IS NOT NULL"
    )
    assert attached[0] == 50


def logged_from(lines: list[dict], event: str, **fields: Any) -> list[dict]:
    return [
        line
        for line in lines
        if line.get("event") == event and all(line.get(k) == v for k, v in fields.items())
    ]


# --- the worker SIGKILLed in the middle of a batch ---------------------------------------------


async def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    processes: ProcessRunner, process_env: dict[str, str], demo_key: str
) -> None:
    """The worker is killed while its transaction has attached the events and is inserting the
    alert (held there by a lock the test owns). After a restart every batch is processed once,
    every event is attached, and the alert exists once."""
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    trip = await start_demo_trip(database_url)
    # ARQ runs a dead worker's jobs again once their in-progress marker expires, after
    # JOB_TIMEOUT + 10 s: a short timeout keeps the test short (yet long enough to catch
    # the worker mid-batch before ARQ would cancel the job itself).
    worker_env = {
        **FAST_WORKER,  # No lost-signal alert for the demo trip while the worker is held.
        "JOB_TIMEOUT": "4",
        "WEBHOOK_TIMEOUT": "1",
        "WEBHOOK_CONNECT_TIMEOUT": "0.5",
    }
    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start("worker", "tripline-worker", **worker_env)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)

    # Within the trip (which started 10 minutes ago). Every batch starts here: whichever the
    # worker takes first raises the speeding alert named after this first fix.
    start = datetime.fromtimestamp(int(datetime.now(UTC).timestamp()) - 300, UTC)
    dedupe_key = f"speeding:{trip['id']}:{int(start.timestamp())}"

    # Hold the alert's dedupe key in an open transaction: the worker's INSERT ... ON CONFLICT
    # waits for it, inside its own transaction, after it has attached the events.
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    transaction = holder.transaction()
    await transaction.start()
    try:
        await holder.execute(
            "INSERT INTO alerts (owner_id, trip_id, rule, message, dedupe_key)"
            " VALUES ($1, $2, 'speeding', 'held by the test', $3)",
            trip["owner_id"],
            trip["id"],
            dedupe_key,
        )
        accepted: list[str] = []
        async with httpx.AsyncClient(timeout=10) as client:
            for n in range(4):
                batch = {
                    "client_batch_id": f"k-{n}",
                    "events": fixes(5, start=start, speed_kmh=95, step_s=5 + n),
                }
                response = await post_batch(client, ingest.url, demo_key, batch, f"kill-{n}")
                assert response.status_code == 202, response.text
                accepted.append(response.json()["batch_id"])

        async def worker_is_stuck_inserting_the_alert() -> bool:
            # Not on `holder`: inside a transaction, pg_stat_activity is a frozen snapshot.
            rows = await fetch(
                database_url,
                "SELECT query FROM pg_stat_activity WHERE application_name = 'worker'"
                " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO alerts%'",
            )
            return bool(rows)

        await wait_for(worker_is_stuck_inserting_the_alert, 15, "the worker blocked mid-batch")
        worker.popen.send_signal(signal.SIGKILL)
        assert worker.popen.wait(10) == -signal.SIGKILL
        await transaction.rollback()
    finally:
        await holder.close()

    assert logged(worker, "batch_processed") == []  # Killed before finishing any batch.
    restarted = processes.start("worker-2", "tripline-worker", **worker_env)
    processes.wait_ready(restarted)

    async def all_processed() -> bool:
        rows = await batches(database_url)
        return all(rows[batch_id]["status"] == "processed" for batch_id in accepted)

    await wait_for(all_processed, 40, "every batch processed after the restart")
    rows = await batches(database_url)
    assert any(rows[batch_id]["attempts"] >= 2 for batch_id in accepted)
    counts = processed_once_each(json_lines(restarted), set(accepted))
    assert set(counts.values()) == {1}, counts
    events = await fetch(database_url, "SELECT trip_id FROM telemetry_events")
    assert len(events) == 20 and all(e["trip_id"] == trip["id"] for e in events)
    alerts = await fetch(database_url, "SELECT dedupe_key, request_id, message FROM alerts")
    assert [a["dedupe_key"] for a in alerts] == [dedupe_key]
    assert alerts[0]["message"] != "held by the test"


# --- Postgres restarted under load --------------------------------------------------------------


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path / "postgres", port=free_port()) as server:
        ensure_database(server.url(), "faults")
        yield server


async def test_a_postgres_restart_under_load_is_ridden_out_without_restarts(
    processes: ProcessRunner,
    process_env: dict[str, str],
    own_postgres: EmbeddedPostgres,
    demo_key: str,
) -> None:
    database_url = own_postgres.url("faults")
    upgrade(database_url)
    env = {"DATABASE_URL": database_url, "DB_CONNECT_TIMEOUT": "2"}
    seed({**process_env, **env})
    await start_demo_trip(database_url)
    ingest = processes.start("ingest", "tripline-ingest", **env)
    worker = processes.start("worker", "tripline-worker", **env, **FAST_WORKER)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)

    start = datetime.now(UTC) - timedelta(minutes=10)
    accepted: dict[str, str] = {}  # client batch id -> batch id
    statuses: list[int] = []  # every answer (0: no answer at all)
    refusals: list[str] = []  # the error codes of the answers that were not 202
    stop = asyncio.Event()

    async def device(client: httpx.AsyncClient) -> None:
        """Posts batches in a loop; resends each until it is acknowledged, as devices must."""
        n = 0
        while not stop.is_set():
            client_batch_id = f"pg-{n}"
            batch = {
                "client_batch_id": client_batch_id,
                "events": fixes(5, start=start + timedelta(seconds=25 * n)),
            }
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    response = await post_batch(
                        client, ingest.url, demo_key, batch, f"pg-{n}-{uuid.uuid4().hex[:6]}"
                    )
                except httpx.HTTPError:
                    statuses.append(0)
                    await asyncio.sleep(0.2)
                    continue
                statuses.append(response.status_code)
                if response.status_code == 202:
                    accepted[client_batch_id] = response.json()["batch_id"]
                    break
                refusals.append(response.json()["code"])
                await asyncio.sleep(float(response.headers.get("retry-after", "1")) / 4)
            n += 1
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(timeout=10) as client:
        load = asyncio.ensure_future(device(client))
        await wait_for(lambda: _at_least(accepted, 3), 10, "some batches before the restart")

        own_postgres.stop()
        down_at = len(statuses)
        await asyncio.sleep(1.5)
        during = [await client.get(f"{p.ops_url}/readyz") for p in (ingest, worker)]
        own_postgres.start()  # Same port, same cluster.

        async def both_ready() -> bool:
            answers = [await client.get(f"{p.ops_url}/readyz") for p in (ingest, worker)]
            return all(a.status_code == 200 for a in answers)

        await wait_for(both_ready, 20, "readiness back after the restart")
        accepted_at_recovery = len(accepted)
        await wait_for(
            lambda: _at_least(accepted, accepted_at_recovery + 3), 20, "batches after the restart"
        )
        stop.set()
        await asyncio.wait_for(load, 35)

    for answer in during:
        assert answer.status_code == 503, answer.text
        assert answer.json()["details"]["checks"]["postgres"] != "ok"
    assert set(statuses[down_at:]) & {503, 0}  # The outage was felt...
    assert set(statuses) <= {202, 503, 0}, refusals  # ...as "retry later", never as a crash,
    assert set(refusals) <= {"database_unavailable", "not_ready"}  # in the shared error shape.
    assert ingest.popen.poll() is None and worker.popen.poll() is None  # No restarts.

    async def all_processed() -> bool:
        rows = await batches(database_url)
        return all(rows[batch_id]["status"] == "processed" for batch_id in accepted.values())

    await wait_for(all_processed, 40, "every acknowledged batch processed")
    rows = await batches(database_url)
    # Each acknowledged batch stored exactly once, complete, nothing stored unacknowledged.
    assert sorted(row["client_batch_id"] for row in rows.values()) == sorted(accepted)
    assert all(row["event_count"] == 5 for row in rows.values())
    [events] = await fetch(database_url, "SELECT count(*) FROM telemetry_events")
    assert events[0] == 5 * len(accepted)


async def _at_least(accepted: dict[str, str], n: int) -> bool:
    return len(accepted) >= n


# --- a webhook receiver that fails, then recovers ------------------------------------------------


async def test_a_webhook_endpoint_that_comes_back_gets_its_delivery_once(
    processes: ProcessRunner, process_env: dict[str, str], webhook_receiver, demo_key: str
) -> None:
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    webhook_receiver.stop()  # Down: connections are refused.
    await start_demo_trip(database_url, webhook_receiver.url)
    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start("worker", "tripline-worker", **FAST_WORKER)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)

    async with httpx.AsyncClient(timeout=10) as client:
        batch = {"events": fixes(3, start=window_aligned(), speed_kmh=99)}
        response = await post_batch(client, ingest.url, demo_key, batch, "hook-fault-1")
        assert response.status_code == 202

    async def failed_attempts() -> int:
        rows = await fetch(database_url, "SELECT attempts, last_error FROM webhook_deliveries")
        return rows[0]["attempts"] if rows and rows[0]["attempts"] >= 2 else 0

    await wait_for(failed_attempts, 20, "two failed attempts")
    [row] = await fetch(database_url, "SELECT status, last_error FROM webhook_deliveries")
    assert row["status"] == "pending" and row["last_error"].startswith("ConnectError")

    webhook_receiver.script = [503]  # Back, but still failing once.
    webhook_receiver.start()

    async def delivered() -> list:
        return webhook_receiver.delivered()

    [delivery] = await wait_for(delivered, 20, "the delivery")
    await asyncio.sleep(1)  # Time for a duplicate to show up, if there were one.
    assert len(webhook_receiver.delivered()) == 1
    assert [r.status for r in webhook_receiver.received] == [503, 200]
    assert verify_signature(
        SECRET,
        delivery.body,
        delivery.headers["X-Tripline-Timestamp"],
        delivery.headers["X-Tripline-Signature"],
    )
    assert delivery.headers["X-Request-ID"] == "hook-fault-1"
    [row] = await fetch(database_url, "SELECT status, attempts FROM webhook_deliveries")
    assert row["status"] == "delivered" and row["attempts"] >= 4
    assert logged(worker, "webhook_delivered", request_id="hook-fault-1")
