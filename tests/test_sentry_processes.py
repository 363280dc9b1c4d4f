"""Sentry from the real processes: each reports a real failure exactly once, tagged, scrubbed.

`SENTRY_DSN` points the four service processes at a stand-in Sentry, a threaded HTTP server
on 127.0.0.1 that records every envelope (`conftest.py` — `fake_sentry`). Nothing is faked
inside the processes:

- the HTTP apps fail for real: a table their route reads is renamed under them (schema drift),
  so an authenticated request ends in an unhandled `UndefinedTable` error and a 500;
- the worker runs a job through the real queue whose argument makes it raise, and a webhook
  delivery that is retried (`arq.Retry`) before it succeeds.

Each process is stopped (gracefully: the SDK flushes at exit) before its events are counted,
so "exactly one" is checked after everything it would ever send has arrived.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool

from tests.test_pipeline import FAST_WORKER, fixes, start_demo_trip, window_aligned
from tests.test_processes import GRACEFUL_EXIT, json_lines, seed, wait_for
from tripline_common.data import asyncpg_dsn
from tripline_common.messaging import IMPORT_WAYPOINTS, PROCESS_BATCH

COOKIE_SECRET = "cookie-secret-must-not-leave"
BODY_MARKER = "body-marker-must-not-leave"


def login(api_url: str, email: str) -> tuple[str, str]:
    """A token and the user's id, through the API's real login (password in a form body)."""
    from scripts.seed import DEMO_PASSWORD

    token = (
        httpx.post(
            f"{api_url}/v1/auth/token",
            data={"username": email, "password": DEMO_PASSWORD},
            timeout=10,
        )
        .raise_for_status()
        .json()["access_token"]
    )
    me = httpx.get(f"{api_url}/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    return token, me.raise_for_status().json()["id"]


async def rename_table(database_url: str, table: str) -> None:
    """Schema drift under a running process: the next query of `table` fails, unhandled."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(f'ALTER TABLE "{table}" RENAME TO "{table}_gone"')
    finally:
        await conn.close()


def assert_tagged(event: dict[str, Any], service: str, request_id: str) -> None:
    assert event["level"] == "error"
    assert event["tags"]["service"] == service
    assert event["tags"]["request_id"] == request_id
    assert event["environment"] == "test"
    assert event["release"].startswith(f"{service}@")
    assert event["exception"]["values"], event


def assert_nothing_secret(raw: bytes, *secrets: str) -> None:
    from scripts.seed import DEMO_DEVICE_KEY, DEMO_PASSWORD

    for secret in (DEMO_PASSWORD, DEMO_DEVICE_KEY, COOKIE_SECRET, BODY_MARKER, *secrets):
        at = raw.find(secret.encode())
        assert at < 0, f"{secret!r} reached Sentry: ...{raw[max(0, at - 3000) : at + 100]!r}"
    assert b"bearer " not in raw.lower()


@pytest.mark.slow
async def test_each_http_app_reports_an_unhandled_error_once(
    processes, process_env, fake_sentry
) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    sentry_env = {"SENTRY_DSN": fake_sentry.dsn}
    api = processes.start("api", "tripline-api", **sentry_env)
    admin = processes.start("admin", "tripline-admin", **sentry_env)
    ingest = processes.start("ingest", "tripline-ingest", **sentry_env)
    for process in (api, admin, ingest):
        processes.wait_ready(process)
    user_token, user_id = login(api.url, "demo@tripline.dev")
    operator_token, operator_id = login(api.url, "operator@tripline.dev")

    database_url = process_env["DATABASE_URL"]
    for table in ("trips", "audit_log", "telemetry_batches"):
        await rename_table(database_url, table)

    def headers(request_id: str, **extra: str) -> dict[str, str]:
        return {"X-Request-ID": request_id, "Cookie": f"session={COOKIE_SECRET}", **extra}

    async with httpx.AsyncClient(timeout=10) as client:
        # Client errors are answers, not events.
        assert (await client.get(f"{api.url}/v1/nowhere")).status_code == 404
        assert (await client.get(f"{api.url}/v1/trips")).status_code == 401
        failures = {
            "api": await client.request(
                "GET",
                f"{api.url}/v1/trips",
                headers=headers("rid-api", Authorization=f"Bearer {user_token}"),
                json={"marker": BODY_MARKER},
            ),
            "admin": await client.get(
                f"{admin.url}/v1/audit-log",
                headers=headers("rid-admin", Authorization=f"Bearer {operator_token}"),
            ),
            "ingest": await client.post(
                f"{ingest.url}/v1/telemetry",
                json={
                    "client_batch_id": BODY_MARKER,
                    "events": fixes(2, start=window_aligned()),
                },
                headers=headers("rid-ingest", **{"X-Device-Key": DEMO_DEVICE_KEY}),
            ),
        }
    for name, response in failures.items():
        assert response.status_code == 500, (name, response.text)
        assert response.json()["code"] == "internal_error", name

    for process in (api, admin, ingest):
        assert process.stop() in GRACEFUL_EXIT, process.name

    assert fake_sentry.errors == []
    [api_event] = fake_sentry.events("api")
    [admin_event] = fake_sentry.events("admin")
    [ingest_event] = fake_sentry.events("ingest")
    assert_tagged(api_event, "api", "rid-api")
    assert_tagged(admin_event, "admin", "rid-admin")
    assert_tagged(ingest_event, "ingest", "rid-ingest")
    assert api_event["user"] == {"id": user_id}
    assert api_event["tags"]["user_id"] == user_id
    assert admin_event["user"] == {"id": operator_id}
    assert admin_event["tags"]["user_id"] == operator_id
    assert "user_id" not in ingest_event["tags"]  # Devices, not users, call ingest.
    for event in (api_event, admin_event, ingest_event):
        request = event["request"]
        assert "data" not in request
        assert "cookies" not in request
        headers = {name.lower(): value for name, value in request["headers"].items()}
        for name in ("authorization", "cookie", "x-device-key"):
            assert headers.get(name, "[Filtered]") == "[Filtered]", (name, headers)
    assert {"authorization", "cookie"} <= {h.lower() for h in api_event["request"]["headers"]}
    assert_nothing_secret(fake_sentry.raw(), user_token, operator_token)


async def enqueue(
    redis_url: str,
    queue_name: str,
    function: str,
    *args: Any,
    job_id: str | None = None,
    **kwargs: Any,
) -> str:
    """Put a job on the worker's queue as `JobQueue` does (with a `request_id`)."""
    job_id = job_id or f"{function}:{uuid.uuid4().hex}"
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        job = await pool.enqueue_job(
            function, *args, _job_id=job_id, _queue_name=queue_name, **kwargs
        )
        assert job is not None
    finally:
        await pool.aclose()
    return job_id


async def add_tracked_job(database_url: str, owner_id: uuid.UUID, params: dict) -> str:
    """A `jobs` row as `tracked_jobs.create_job` writes it; returns its ID."""
    job_id = uuid.uuid4()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "INSERT INTO jobs (id, owner_id, kind, arq_job_id, params, request_id)"
            " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
            job_id,
            owner_id,
            IMPORT_WAYPOINTS.name,
            IMPORT_WAYPOINTS.job_id(job_id),
            json.dumps(params),
            "rid-tracked",
        )
    finally:
        await conn.close()
    return str(job_id)


@pytest.mark.slow
async def test_failed_jobs_are_one_event_each_and_a_retried_job_none(
    processes, process_env, fake_sentry, webhook_receiver
) -> None:
    from scripts.seed import DEMO_DEVICE_KEY

    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    trip = await start_demo_trip(database_url, webhook_receiver.url)
    webhook_receiver.script = [500, 503]  # Two attempts fail (arq.Retry), the third succeeds.
    sentry_env = {"SENTRY_DSN": fake_sentry.dsn, **FAST_WORKER}
    ingest = processes.start("ingest", "tripline-ingest", **sentry_env)
    worker = processes.start("worker", "tripline-worker", **sentry_env)
    processes.wait_ready(ingest)
    processes.wait_ready(worker)
    queue = (process_env["REDIS_URL"], process_env["ARQ_QUEUE_NAME"])

    # A job that raises: the batch ID is not a UUID. ARQ does not run it again.
    batch_job = await enqueue(*queue, PROCESS_BATCH.name, "not-a-batch-id", request_id="rid-job")
    # A user's tracked job that raises (its trip ID is not a UUID): the event names the user.
    tracked = await add_tracked_job(
        database_url,
        trip["owner_id"],
        {"format": "csv", "content": "lat,lon\n52.5,13.4\n", "trip_id": "not-a-trip-id"},
    )
    tracked_job = await enqueue(
        *queue,
        IMPORT_WAYPOINTS.name,
        tracked,
        request_id="rid-tracked",
        job_id=IMPORT_WAYPOINTS.job_id(tracked),
    )
    # A speeding upload: an alert, and a webhook delivery retried twice before it succeeds.
    async with httpx.AsyncClient(timeout=10) as client:
        upload = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={
                "client_batch_id": "sentry-1",
                "events": fixes(6, start=window_aligned(), speed_kmh=118),
            },
            headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": "rid-upload"},
        )
    assert upload.status_code == 202, upload.text

    async def settled() -> bool:
        failed = {
            line.get("job_id") for line in json_lines(worker) if line["event"] == "job_failed"
        }
        return {batch_job, tracked_job} <= failed and bool(webhook_receiver.delivered())

    await wait_for(settled, timeout=60)
    retries = [r for r in webhook_receiver.received if r.status >= 500]
    assert len(retries) == 2

    assert worker.stop() in GRACEFUL_EXIT
    assert ingest.stop() in GRACEFUL_EXIT
    assert fake_sentry.errors == []
    assert fake_sentry.events("ingest") == []
    events = {event["tags"]["job_function"]: event for event in fake_sentry.events("worker")}
    assert len(fake_sentry.events("worker")) == 2 and set(events) == {
        PROCESS_BATCH.name,
        IMPORT_WAYPOINTS.name,
    }
    batch_event, tracked_event = events[PROCESS_BATCH.name], events[IMPORT_WAYPOINTS.name]
    assert_tagged(batch_event, "worker", "rid-job")
    assert batch_event["tags"]["job_id"] == batch_job
    assert "user" not in batch_event  # A batch job works for no user.
    assert "user_id" not in batch_event["tags"]
    assert_tagged(tracked_event, "worker", "rid-tracked")
    assert tracked_event["tags"]["job_id"] == tracked_job
    assert tracked_event["user"] == {"id": str(trip["owner_id"])}
    assert tracked_event["tags"]["user_id"] == str(trip["owner_id"])
    for event in (batch_event, tracked_event):
        assert event["exception"]["values"][-1]["type"] == "ValueError"
        assert event["exception"]["values"][-1]["mechanism"]["handled"] is False
    assert_nothing_secret(fake_sentry.raw())
