"""The log a developer reads: one line per job, nothing from sweeps that found nothing, no
Alembic preamble; and all of it back with LOG_LEVEL=DEBUG. Real worker and migrate processes."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BIN
from tests.test_processes import batch_status, json_lines, seed, wait_for
from tests.test_sentry_processes import enqueue
from tripline_common.data import asyncpg_dsn
from tripline_common.messaging import JOBS, PROCESS_BATCH

PERIODIC = {spec.name for spec in JOBS.values() if spec.periodic}
# Every sweeper and the lost-signal check run every second: many runs within a few seconds.
FAST_CRONS = {"SWEEP_INTERVAL_SECONDS": "1", "LOST_SIGNAL_CHECK_SECONDS": "1"}


async def add_batch(database_url: str) -> str:
    """A fresh batch (no events) of the demo device: nothing for a sweeper to find."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        device_id = await conn.fetchval("SELECT id FROM devices LIMIT 1")
        batch_id = await conn.fetchval(
            "INSERT INTO telemetry_batches (device_id, event_count, request_id)"
            " VALUES ($1, 0, 'rid-dev-log') RETURNING id",
            device_id,
        )
    finally:
        await conn.close()
    return str(batch_id)


async def finished_runs(worker: Any, function: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"{worker.ops_url}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "tripline_worker_jobs_finished_total"
        and sample.labels.get("function") == function
    )


async def run_one_batch(processes: Any, process_env: dict[str, str], **env: str) -> tuple:
    """Start a worker with fast crons, let it process one batch and sweep a few times, stop it;
    returns its log lines and the batch's job ID."""
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    worker = processes.start("worker", "tripline-worker", **FAST_CRONS, **env)
    processes.wait_ready(worker)
    batch_id = await add_batch(database_url)
    job_id = await enqueue(
        process_env["REDIS_URL"],
        process_env["ARQ_QUEUE_NAME"],
        PROCESS_BATCH.name,
        batch_id,
        job_id=PROCESS_BATCH.job_id(batch_id),
        request_id="rid-dev-log",
    )

    async def processed() -> bool:
        return await batch_status(database_url, batch_id) == "processed"

    async def swept_three_times() -> bool:
        return await finished_runs(worker, "requeue_stuck_deliveries") >= 3

    await wait_for(processed)
    await wait_for(swept_three_times)
    worker.stop()
    return json_lines(worker), job_id


@pytest.mark.slow
async def test_a_job_is_one_line_and_a_sweep_that_finds_nothing_is_none(
    processes, process_env
) -> None:
    lines, job_id = await run_one_batch(processes, process_env)

    assert {line["level"] for line in lines} <= {"info", "warning", "error", "critical"}
    ours = [line for line in lines if line.get("job_id") == job_id]
    assert [line["event"] for line in ours] == ["batch_processed"]
    # ARQ's own lines for the job (started, finished) are gone; its start-up lines are not.
    arq = [line for line in lines if line["logger"].startswith("arq")]
    assert arq and not [line for line in arq if job_id in line["event"]]
    assert not [line for line in arq if "recording health" in line["event"]]
    # Many sweeps and lost-signal checks ran, found nothing, and said nothing.
    assert not [line for line in lines if line.get("job") in PERIODIC]
    assert not [line for line in arq if "→" in line["event"] or "←" in line["event"]]


@pytest.mark.slow
async def test_log_level_debug_shows_every_run_and_arqs_own_lines(processes, process_env) -> None:
    lines, job_id = await run_one_batch(processes, process_env, LOG_LEVEL="DEBUG")

    ours = [
        line["event"]
        for line in lines
        if line.get("job_id") == job_id and line["logger"].startswith("tripline")
    ]
    assert ours == ["job_started", "batch_processed", "job_succeeded"]
    arq = [line["event"] for line in lines if line["logger"] == "arq.worker"]
    assert any(job_id in event and "→" in event for event in arq)
    assert any(job_id in event and "←" in event for event in arq)
    swept = [
        line
        for line in lines
        if line.get("job") == "requeue_stuck_deliveries" and line["event"] == "job_succeeded"
    ]
    assert swept and all(line["level"] == "debug" for line in swept)


def migrate(database_url: str, *args: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    result = subprocess.run(
        [str(BIN / "tripline-migrate"), *args],
        env={**environment, "DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stderr


def test_migrate_says_what_it_runs_without_alembics_preamble(scratch_database) -> None:
    database_url = scratch_database()

    quiet = migrate(database_url, "upgrade", "head")
    assert "Running upgrade  -> 0001_core_tables" in quiet
    assert "Context impl" not in quiet and "Will assume" not in quiet

    detailed = migrate(database_url, "downgrade", "base", LOG_LEVEL="DEBUG")
    assert "Context impl PostgresqlImpl." in detailed
    assert "Will assume transactional DDL." in detailed
    assert "Running downgrade 0001_core_tables -> " in detailed
