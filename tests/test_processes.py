"""The four processes, started for real: probes, metrics, the correlation ID's whole journey,
the cron sweeper, and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tripline_common.data import asyncpg_dsn

# After a graceful shutdown uvicorn re-raises the signal it caught, as Unix convention asks,
# so the exit status says "ended by SIGTERM" (143 in a shell, -15 from Popen).
GRACEFUL_EXIT = (0, -signal.SIGTERM)

SERVICES = [
    ("api", "tripline-api"),
    ("admin", "tripline-admin"),
    ("ingest", "tripline-ingest"),
    ("worker", "tripline-worker"),
]


def seed(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "seed.py")], env=env, check=True, timeout=60
    )


def json_lines(process) -> list[dict]:
    lines = []
    for line in process.log_lines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{process.name} wrote a non-JSON line: {line!r}") from None
    return lines


async def batch_status(database_url: str, batch_id: str) -> str | None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetchval(
            "SELECT status FROM telemetry_batches WHERE id = $1", uuid.UUID(batch_id)
        )
    finally:
        await conn.close()


async def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.slow
async def test_four_processes_serve_probes_and_metrics(processes) -> None:
    started = {name: processes.start(name, command) for name, command in SERVICES}
    for process in started.values():
        processes.wait_ready(process)
    async with httpx.AsyncClient(timeout=5) as client:
        for name, process in started.items():
            live = await client.get(f"{process.ops_url}/livez")
            ready = await client.get(f"{process.ops_url}/readyz")
            metrics = await client.get(f"{process.ops_url}/metrics")
            assert live.status_code == 200, name
            assert ready.json()["checks"]["postgres"] == "ok", name
            assert ready.json()["checks"]["redis"] == "ok", name
            families = {f.name for f in text_string_to_metric_families(metrics.text)}
            assert "process_cpu_seconds" in families, name
        worker_ready = await client.get(f"{started['worker'].ops_url}/readyz")
        assert worker_ready.json()["checks"]["worker"] == "ok"
        docs = await client.get(f"{started['api'].url}/openapi.json")
        assert "/v1/users" in docs.json()["paths"]
    for process in started.values():
        assert process.stop() in GRACEFUL_EXIT, process.name
        lines = json_lines(process)
        assert all("level" in line for line in lines)
        assert "stopped" in [line["event"] for line in lines], process.name


@pytest.mark.slow
async def test_probes_and_metrics_answer_only_on_the_ops_port(processes) -> None:
    """The port the Service and Ingress reach (PORT) answers 404 for the probes and /metrics;
    OPS_PORT serves them and nothing else."""
    started = {name: processes.start(name, command) for name, command in SERVICES}
    for process in started.values():
        processes.wait_ready(process)
    ops_paths = ["/livez", "/readyz", "/startupz", "/metrics"]
    async with httpx.AsyncClient(timeout=5) as client:
        for name, process in started.items():
            for path in ops_paths:
                public = await client.get(f"{process.url}{path}")
                assert public.status_code == 404, (name, path, public.text)
                assert public.json()["code"] == "not_found", (name, path)
                assert (await client.get(f"{process.ops_url}{path}")).status_code == 200, (
                    name,
                    path,
                )
            for path in ["/openapi.json", "/v1/users/me", "/console/"]:
                ops = await client.get(f"{process.ops_url}{path}")
                assert ops.status_code == 404, (name, path, ops.text)
        # The public port still serves the app.
        docs = await client.get(f"{started['api'].url}/openapi.json")
        assert docs.status_code == 200


@pytest.mark.slow
async def test_correlation_id_travels_from_request_to_worker_log(processes, process_env) -> None:
    seed(process_env)
    from scripts.seed import DEMO_DEVICE_KEY

    ingest = processes.start("ingest", "tripline-ingest")
    worker = processes.start("worker", "tripline-worker")
    processes.wait_ready(ingest)
    processes.wait_ready(worker)

    request_id = f"e2e-{uuid.uuid4().hex}"
    event = {
        "recorded_at": datetime.now(UTC).isoformat(),
        "lat": 52.5,
        "lon": 13.4,
        "speed_kmh": 42,
    }
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.post(
            f"{ingest.url}/v1/telemetry",
            json={"events": [event]},
            headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": request_id},
        )
    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == request_id
    batch_id = response.json()["batch_id"]

    database_url = process_env["DATABASE_URL"]
    await wait_for(lambda: _is_processed(database_url, batch_id))

    ingest_lines = [line for line in json_lines(ingest) if line.get("request_id") == request_id]
    assert any(line["event"] == "request" and line["status"] == 202 for line in ingest_lines)
    assert any(line["event"] == "job_enqueued" for line in ingest_lines)

    async def worker_logged() -> list[dict]:
        return [
            line
            for line in json_lines(worker)
            if line.get("request_id") == request_id and line["event"] == "batch_processed"
        ]

    [processed] = await wait_for(worker_logged, timeout=5)
    assert processed["service"] == "worker"
    assert processed["job"] == "process_batch"
    assert processed["job_id"] == f"process_batch:{batch_id}"


async def _is_processed(database_url: str, batch_id: str) -> bool:
    return await batch_status(database_url, batch_id) == "processed"


@pytest.mark.slow
async def test_worker_cron_requeues_a_batch_that_never_reached_the_queue(
    processes, process_env
) -> None:
    """A batch committed while Redis was unreachable is found by the sweeper and processed."""
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        device_id = await conn.fetchval("SELECT id FROM devices LIMIT 1")
        batch_id = await conn.fetchval(
            "INSERT INTO telemetry_batches (device_id, event_count, received_at, request_id)"
            " VALUES ($1, 0, now() - interval '10 minutes', 'lost-rid') RETURNING id",
            device_id,
        )
    finally:
        await conn.close()

    worker = processes.start("worker", "tripline-worker")
    processes.wait_ready(worker)
    await wait_for(lambda: _is_processed(database_url, str(batch_id)))
    lines = json_lines(worker)
    assert any(line["event"] == "stuck_batches_requeued" for line in lines)
    assert any(
        line["event"] == "batch_processed" and line["request_id"] == "lost-rid" for line in lines
    )
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{worker.ops_url}/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics)
        for s in f.samples
    }
    key = (
        "tripline_worker_jobs_finished_total",
        (("function", "process_batch"), ("outcome", "succeeded")),
    )
    assert samples[key] >= 1


@pytest.mark.slow
async def test_sigterm_fails_readiness_then_drains_and_exits(processes) -> None:
    api = processes.start("api", "tripline-api", SHUTDOWN_DRAIN_SECONDS="2")
    processes.wait_ready(api)
    api.popen.send_signal(signal.SIGTERM)
    async with httpx.AsyncClient(timeout=2) as client:
        # Still serving during the drain, but no longer ready.
        ready = await client.get(f"{api.ops_url}/readyz")
        live = await client.get(f"{api.ops_url}/livez")
    assert ready.status_code == 503
    assert ready.json()["code"] == "shutting_down"
    assert live.status_code == 200
    assert api.popen.wait(15) in GRACEFUL_EXIT
    events = [line["event"] for line in json_lines(api)]
    assert events.index("shutdown_requested") < events.index("stopped")


@pytest.mark.slow
async def test_worker_finishes_a_running_job_before_it_stops(processes, process_env) -> None:
    """SIGTERM while a job runs: the worker takes no new work, lets the job finish, then exits."""
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        device_id = await holder.fetchval("SELECT id FROM devices LIMIT 1")
        batch_id = await holder.fetchval(
            "INSERT INTO telemetry_batches (device_id, event_count, received_at, request_id)"
            " VALUES ($1, 0, now() - interval '10 minutes', 'drain-rid') RETURNING id",
            device_id,
        )
        # Hold the batch's row lock so the worker's process_batch blocks mid-job.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT 1 FROM telemetry_batches WHERE id = $1 FOR UPDATE", batch_id)

        # At DEBUG, the worker logs each job's start (`job_started`): the sign it is running.
        worker = processes.start(
            "worker", "tripline-worker", JOB_COMPLETION_WAIT="15", LOG_LEVEL="DEBUG"
        )
        processes.wait_ready(worker)

        async def job_is_running() -> bool:
            return any(
                line["event"] == "job_started" and line.get("job") == "process_batch"
                for line in json_lines(worker)
            )

        await wait_for(job_is_running)
        worker.popen.send_signal(signal.SIGTERM)
        await wait_for(lambda: _logged(worker, "worker_draining"), timeout=5)
        assert worker.popen.poll() is None  # Still waiting for the job.
        await transaction.rollback()  # Release the lock: the job can finish.
    finally:
        await holder.close()

    assert worker.popen.wait(20) in GRACEFUL_EXIT
    assert await batch_status(database_url, str(batch_id)) == "processed"
    events = [line["event"] for line in json_lines(worker)]
    assert events.index("batch_processed") < events.index("worker_stopped")


async def _logged(process, event: str) -> bool:
    return any(line["event"] == event for line in json_lines(process))
