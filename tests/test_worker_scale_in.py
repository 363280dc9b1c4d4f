"""Scale-in, for real: a worker process removed in the middle of telemetry batches made through
the real ingest, by SIGTERM (what a scale-in, a rollout or a node drain sends) or by SIGKILL (what
follows when the grace period runs out, or the node dies). Nothing is lost, nothing completes
twice, and the time a killed worker's job waits for another worker is measured and printed.

Each batch's job is held in the middle of its run by a row lock the test owns (the job's first
statement, claiming the batch, waits for it), so "in the middle" needs no timing.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from tests.conftest import Process, ProcessRunner
from tests.test_pipeline import (
    FAST_WORKER,
    fetch,
    fixes,
    json_lines,
    seed,
    start_demo_trip,
    wait_for,
)
from tests.test_processes import GRACEFUL_EXIT
from tripline_common.data import asyncpg_dsn
from tripline_common.messaging import JOBS, PROCESS_BATCH
from tripline_worker.settings import WorkerServiceSettings

pytestmark = pytest.mark.slow

EVENTS_PER_BATCH = 5
# Margin on top of the shutdown's own waits, as the chart adds `shutdown.marginSeconds`.
GRACE_MARGIN_SECONDS = 2
# ARQ's in-progress marker outlives the job timeout by this much (arq.worker.Worker:
# `in_progress_timeout_s = max_timeout + 10`).
ARQ_IN_PROGRESS_EXTRA_SECONDS = 10


class BatchLocks:
    """Row locks on telemetry batches, one connection each: a worker's job for a locked batch
    waits in its first statement until the test releases that batch."""

    def __init__(self, database_url: str) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.held: dict[str, tuple[asyncpg.Connection, Any]] = {}

    async def hold(self, batch_id: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(
            "SELECT 1 FROM telemetry_batches WHERE id = $1 FOR UPDATE", uuid.UUID(batch_id)
        )
        self.held[batch_id] = (conn, transaction)

    async def release(self, batch_id: str) -> None:
        conn, transaction = self.held.pop(batch_id)
        await transaction.rollback()
        await conn.close()

    async def release_all(self) -> None:
        for batch_id in list(self.held):
            await self.release(batch_id)


async def post_batches(ingest: Process, labels: list[str]) -> dict[str, str]:
    """One batch per label through the real ingest (disjoint fixes); label -> batch ID."""
    from scripts.seed import DEMO_DEVICE_KEY

    ids = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for n, label in enumerate(labels):
            start = datetime.now(UTC) - timedelta(minutes=5) + timedelta(seconds=30 * n)
            response = await client.post(
                f"{ingest.url}/v1/telemetry",
                json={
                    "client_batch_id": f"scale-in-{label}-{uuid.uuid4().hex[:8]}",
                    "events": fixes(EVENTS_PER_BATCH, start=start),
                },
                headers={"X-Device-Key": DEMO_DEVICE_KEY, "X-Request-ID": f"scale-in-{label}"},
            )
            assert response.status_code == 202, response.text
            ids[label] = response.json()["batch_id"]
    return ids


def job_starts(process: Process) -> list[dict]:
    """The jobs a worker started (logged at DEBUG by `correlated_job`), in order."""
    return [line for line in json_lines(process) if line.get("event") == "job_started"]


def batch_job_started(process: Process, batch_id: str) -> list[dict]:
    job_id = PROCESS_BATCH.job_id(batch_id)
    return [line for line in job_starts(process) if line.get("job_id") == job_id]


def processed(process: Process) -> Counter[str]:
    """How many times each batch was processed to completion by this worker."""
    return Counter(
        line["batch_id"] for line in json_lines(process) if line.get("event") == "batch_processed"
    )


def events_after(process: Process, mark: dict) -> list[dict]:
    """The log lines after the line `mark`."""
    lines = json_lines(process)
    return lines[lines.index(mark) + 1 :]


async def batch_rows(database_url: str) -> dict[str, dict]:
    rows = await fetch(database_url, "SELECT id, status, attempts FROM telemetry_batches")
    return {str(row["id"]): dict(row) for row in rows}


async def attached_events(database_url: str, trip_id: uuid.UUID) -> Counter[str]:
    rows = await fetch(
        database_url, "SELECT batch_id FROM telemetry_events WHERE trip_id = $1", trip_id
    )
    return Counter(str(row["batch_id"]) for row in rows)


def log_time(line: dict) -> float:
    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


@pytest.mark.timeout(240)  # Three process starts in turn on a loaded 2-core machine: a guard.
async def test_sigterm_mid_jobs_takes_no_new_job_and_finishes_or_hands_back_the_running_ones(
    processes: ProcessRunner, process_env: dict[str, str]
) -> None:
    """Batches `finishing` and `handed_back` are running when SIGTERM arrives; `late_1` and
    `late_2` are enqueued after it, during the drain. The first worker finishes `finishing`
    (released during its completion wait), hands `handed_back` back to the queue when the wait
    ends (still held), takes neither late batch, and exits within its grace period. A second
    worker, started after, runs the rest: every batch completes exactly once."""
    ingest = processes.start("ingest", "tripline-ingest")  # Boots while the seed runs.
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    trip = await start_demo_trip(database_url)
    # A drain as in a cluster (no job may start during it), short waits so the test is short;
    # JOB_TIMEOUT stays 30 s, longer than the wait, so a job still held when the wait ends is
    # handed back rather than timed out.
    shutdown = {
        "SHUTDOWN_DRAIN_SECONDS": "2",
        "GRACEFUL_SHUTDOWN_TIMEOUT": "2",
        "JOB_COMPLETION_WAIT": "4",
    }
    settings = WorkerServiceSettings(_env_file=None, **{k.lower(): v for k, v in shutdown.items()})
    grace = (
        settings.shutdown_drain_seconds
        + settings.graceful_shutdown_timeout
        + settings.job_completion_wait
        + GRACE_MARGIN_SECONDS
    )
    processes.wait_ready(ingest)
    batches = await post_batches(ingest, ["finishing", "handed_back"])
    locks = BatchLocks(database_url)
    try:
        for batch_id in batches.values():
            await locks.hold(batch_id)
        first = processes.start("worker-1", "tripline-worker", LOG_LEVEL="DEBUG", **shutdown)
        processes.wait_ready(first)

        async def both_running() -> bool:
            return all(batch_job_started(first, b) for b in batches.values())

        await wait_for(both_running, 20, "both batches' jobs running")
        first.popen.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Enqueued while the first worker drains: it must leave them to another worker.
        batches |= await post_batches(ingest, ["late_1", "late_2"])

        async def draining() -> bool:
            return any(line.get("event") == "worker_draining" for line in json_lines(first))

        await wait_for(draining, 10, "the runner draining")
        await locks.release(batches["finishing"])  # It may now finish, inside the wait.
        assert first.popen.wait(grace) in GRACEFUL_EXIT  # Past `grace` the kubelet SIGKILLs.
        stopped_after = time.monotonic() - signalled
    finally:
        await locks.release_all()

    second = processes.start("worker-2", "tripline-worker", LOG_LEVEL="DEBUG")
    processes.wait_ready(second)

    async def all_processed() -> bool:
        rows = await batch_rows(database_url)
        return all(rows[b]["status"] == "processed" for b in batches.values())

    await wait_for(all_processed, 20, "every batch processed by the second worker")

    # No job of any kind (cron runs included) was taken after SIGTERM. A pick in flight at that
    # instant completes: a cron run due before the signal may start just after it (its job ID
    # ends with its due time in ms); a cron run due later, or any other job, may not.
    (signal_line,) = [line for line in json_lines(first) if line["event"] == "shutdown_requested"]
    started_after = [
        line for line in events_after(first, signal_line) if line["event"] == "job_started"
    ]
    assert [
        line
        for line in started_after
        if not JOBS[line["job"]].periodic
        or int(line["job_id"].rsplit(":", 1)[1]) / 1000 > log_time(signal_line)
    ] == []
    assert {line["job_id"] for line in job_starts(first) if line["job"] == "process_batch"} == {
        PROCESS_BATCH.job_id(batches[label]) for label in ("finishing", "handed_back")
    }
    first_events = [line.get("event") for line in json_lines(first)]
    assert first_events.index("worker_draining") < first_events.index("worker_stopped")
    # Finished in the wait by the first worker; the rest completed by the second; each once.
    assert processed(first) == {batches["finishing"]: 1}
    assert processed(second) == {batches[label]: 1 for label in ("handed_back", "late_1", "late_2")}
    # The handed-back job's second run: the run cut short counts as one of its MAX_TRIES.
    (rerun,) = batch_job_started(second, batches["handed_back"])
    assert rerun["job_try"] == 2
    # Postgres: each batch claimed once (the cancelled run's claim was rolled back), each of its
    # events attached to the trip once.
    rows = await batch_rows(database_url)
    assert {label: rows[b]["attempts"] for label, b in batches.items()} == dict.fromkeys(batches, 1)
    assert await attached_events(database_url, trip["id"]) == dict.fromkeys(
        batches.values(), EVENTS_PER_BATCH
    )
    print(
        f"\nscale-in SIGTERM: worker exited {stopped_after:.1f} s after SIGTERM "
        f"(drain {settings.shutdown_drain_seconds:g} s + job completion wait "
        f"{settings.job_completion_wait} s; grace period {grace:g} s)"
    )


@pytest.mark.timeout(240)  # Three process starts and a 15 s wait on a loaded machine: a guard.
async def test_a_killed_workers_job_is_run_once_by_another_once_its_in_progress_marker_expires(
    processes: ProcessRunner, process_env: dict[str, str], redis_url: str
) -> None:
    """Two workers run; one takes the batch's job and is SIGKILLed at once. That leaves ARQ's
    in-progress marker behind and the job in the queue: the other worker takes it once the
    marker expires (JOB_TIMEOUT + 10 s after the pick) and runs it once; the measured wait is
    printed. The batch sweeper, running meanwhile, cannot shorten it: the job is still queued,
    so its re-enqueue is refused."""
    # A short job timeout keeps the wait short (the webhook timeouts must stay below it). The
    # sweeper looks every second for batches pending 2 s.
    worker_env = {
        "JOB_TIMEOUT": "5",
        "WEBHOOK_TIMEOUT": "1",
        "WEBHOOK_CONNECT_TIMEOUT": "0.5",
        "LOG_LEVEL": "DEBUG",
        **FAST_WORKER,  # Among them: no lost-signal alert for the demo trip, held or not.
    }
    job_timeout = int(worker_env["JOB_TIMEOUT"])
    # They boot while the seed runs.
    ingest = processes.start("ingest", "tripline-ingest")
    workers = [processes.start(f"worker-{n}", "tripline-worker", **worker_env) for n in (1, 2)]
    seed(process_env)
    database_url = process_env["DATABASE_URL"]
    trip = await start_demo_trip(database_url)
    for process in (ingest, *workers):
        processes.wait_ready(process)
    redis = Redis.from_url(redis_url)
    # The job's run waits on the trip's row (after claiming the batch) while the test holds it.
    holder = await asyncpg.connect(asyncpg_dsn(database_url))
    transaction = holder.transaction()
    await transaction.start()
    try:
        await holder.execute("SELECT 1 FROM trips WHERE id = $1 FOR UPDATE", trip["id"])
        batch_id = (await post_batches(ingest, ["killed"]))["killed"]

        async def taken() -> list[tuple[Process, dict]]:
            return [(w, line) for w in workers for line in batch_job_started(w, batch_id)]

        ((killed_worker, pick),) = await wait_for(taken, 20, "a worker taking the job")
        marker = f"arq:in-progress:{PROCESS_BATCH.job_id(batch_id)}"
        marker_left = await redis.pttl(marker) / 1000
        killed_worker.popen.send_signal(signal.SIGKILL)
        killed = time.time()
        assert killed_worker.popen.wait(10) == -signal.SIGKILL
        await transaction.rollback()
    finally:
        await holder.close()
    (survivor,) = [w for w in workers if w is not killed_worker]

    async def picked_up() -> list[dict]:
        return batch_job_started(survivor, batch_id)

    try:
        (picked,) = await wait_for(
            picked_up, job_timeout + ARQ_IN_PROGRESS_EXTRA_SECONDS + 20, "the other worker"
        )

        async def done() -> bool:
            return (await batch_rows(database_url))[batch_id]["status"] == "processed"

        await wait_for(done, 20, "the batch processed")
    finally:
        await redis.aclose()

    assert processed(killed_worker) == {}
    assert processed(survivor) == {batch_id: 1}
    assert picked["job_try"] == 2  # The killed run counts as one of its MAX_TRIES.
    # The sweeper ran while the job waited and found the batch pending, but its re-enqueue was
    # refused (the job was still queued), so it did not shorten the wait.
    sweeps = [
        line
        for line in job_starts(survivor)
        if line["job"] == "requeue_stuck_batches" and killed < log_time(line) < log_time(picked)
    ]
    assert sweeps
    assert not any(line.get("event") == "stuck_batches_requeued" for line in json_lines(survivor))
    # Claimed twice (the killed run had committed its claim), completed once.
    assert (await batch_rows(database_url))[batch_id]["attempts"] == 2
    assert await attached_events(database_url, trip["id"]) == {batch_id: EVENTS_PER_BATCH}
    waited = log_time(picked) - killed
    print(
        f"\nscale-in SIGKILL: picked up by the other worker {waited:.1f} s after SIGKILL, "
        f"{log_time(picked) - log_time(pick):.1f} s after the killed worker took it (its "
        f"in-progress marker had {marker_left:.1f} s left at the kill; bound: JOB_TIMEOUT "
        f"{job_timeout} s + {ARQ_IN_PROGRESS_EXTRA_SECONDS} s after the pick)"
    )
