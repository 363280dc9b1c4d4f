"""Operators' view of background work: failures from every source, retries that keep the
work's correlation ID, and cancellation the worker honours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from arq.jobs import deserialize_job
from arq.worker import Worker, func
from sqlalchemy import select

from tripline_admin.state import AdminState
from tripline_common.data import job_arq_id, mark_job_running
from tripline_common.data.models import (
    AuditLogEntry,
    BatchStatus,
    Device,
    Job,
    JobStatus,
    TelemetryBatch,
)
from tripline_common.messaging import create_redis


async def boom(ctx, n: int, request_id: str | None = None) -> None:
    raise ValueError(f"cannot handle {n}")


async def run_failing_arq_job(settings, job_id: str = "boom:1") -> None:
    """Enqueue `boom` and let a real ARQ worker run it once, leaving a failed result."""
    redis = create_redis(settings)
    await redis.enqueue_job("boom", 7, _job_id=job_id, request_id="boom-request")
    worker = Worker(
        functions=[func(boom, name="boom")],
        redis_pool=redis,
        queue_name=settings.arq_queue_name,
        burst=True,
        poll_delay=0.01,
        keep_result=60,
        max_tries=1,
        handle_signals=False,
    )
    await worker.main()
    await redis.aclose()


@pytest.fixture
def add_job(session_factory):
    async def add(status: JobStatus, **values) -> Job:
        job_id = uuid.uuid4()
        async with session_factory() as session:
            job = Job(
                id=job_id,
                kind="export_trips",
                status=status,
                arq_job_id=job_arq_id("export_trips", job_id),
                request_id="export-request",
                **values,
            )
            session.add(job)
            await session.commit()
        return job

    return add


@pytest.fixture
async def failed_batch(session_factory, make_user) -> TelemetryBatch:
    owner = await make_user()
    async with session_factory() as session:
        device = Device(owner_id=owner.id, name="van", api_key_prefix="tl_x", api_key_hash="h" * 64)
        session.add(device)
        await session.flush()
        batch = TelemetryBatch(
            device_id=device.id,
            status=BatchStatus.FAILED,
            event_count=3,
            attempts=5,
            request_id="ingest-request",
            error="KeyError: 'trip'",
            processed_at=datetime.now(UTC),
        )
        session.add(batch)
        await session.commit()
    return batch


async def test_failures_come_from_tracked_jobs_batches_and_arq_results(
    client, admin_settings, operator_headers, add_job, failed_batch
) -> None:
    job = await add_job(JobStatus.FAILED, error="Export too large", finished_at=datetime.now(UTC))
    await add_job(JobStatus.SUCCEEDED)
    await run_failing_arq_job(admin_settings)

    response = await client.get("/v1/failures", headers=operator_headers)

    assert response.status_code == 200, response.text
    by_source = {f["source"]: f for f in response.json()}
    assert by_source.keys() == {"job", "telemetry_batch", "arq"}
    assert by_source["job"] | {"failed_at": None} == {
        "source": "job",
        "id": str(job.id),
        "kind": "export_trips",
        "error": "Export too large",
        "request_id": "export-request",
        "failed_at": None,
        "attempts": None,
    }
    assert by_source["telemetry_batch"]["request_id"] == "ingest-request"
    assert by_source["telemetry_batch"]["attempts"] == 5
    assert by_source["arq"] | {"failed_at": None} == {
        "source": "arq",
        "id": "boom:1",
        "kind": "boom",
        "error": "ValueError: cannot handle 7",
        "request_id": "boom-request",
        "failed_at": None,
        "attempts": 1,
    }
    only_arq = await client.get("/v1/failures?source=arq", headers=operator_headers)
    assert [f["source"] for f in only_arq.json()] == ["arq"]


async def test_retrying_a_failed_job_requeues_it_under_its_own_correlation_id(
    client, admin_app, operator_headers, add_job, session_factory
) -> None:
    job = await add_job(JobStatus.FAILED, error="boom", finished_at=datetime.now(UTC))
    redis = AdminState.of(admin_app).resources.redis
    await redis.set(f"arq:result:{job.arq_job_id}", b"stale")  # ARQ would refuse the job ID

    response = await client.post(
        f"/v1/failures/job/{job.id}/retry",
        headers={**operator_headers, "X-Request-ID": "operator-retry"},
    )

    assert response.status_code == 202, response.text
    assert response.json()["request_id"] == "export-request"
    queued = deserialize_job(await redis.get(f"arq:job:{job.arq_job_id}"))
    assert (queued.function, queued.args) == ("export_trips", (str(job.id),))
    assert queued.kwargs == {"request_id": "export-request"}
    assert await redis.zscore(AdminState.of(admin_app).settings.arq_queue_name, job.arq_job_id)
    async with session_factory() as session:
        row = await session.get(Job, job.id)
        [entry] = await session.scalars(select(AuditLogEntry))
    assert (row.status, row.error, row.finished_at) == (JobStatus.QUEUED, None, None)
    assert entry.action == "job.retry" and entry.request_id == "operator-retry"
    assert entry.details["work_request_id"] == "export-request"

    again = await client.post(f"/v1/failures/job/{job.id}/retry", headers=operator_headers)
    assert again.status_code == 409
    assert again.json()["code"] == "not_failed"


async def test_retrying_an_arq_failure_enqueues_the_same_call_again(
    client, admin_app, admin_settings, operator_headers
) -> None:
    await run_failing_arq_job(admin_settings, job_id="boom:2")
    redis = AdminState.of(admin_app).resources.redis

    response = await client.post("/v1/failures/arq/boom:2/retry", headers=operator_headers)

    assert response.status_code == 202, response.text
    queued = deserialize_job(await redis.get("arq:job:boom:2"))
    assert (queued.function, queued.args, queued.kwargs) == (
        "boom",
        (7,),
        {"request_id": "boom-request"},
    )
    assert await redis.get("arq:result:boom:2") is None
    listed = await client.get("/v1/failures", headers=operator_headers)
    assert listed.json() == []  # Retried: no longer a failure (until it fails again).
    gone = await client.post("/v1/failures/arq/boom:2/retry", headers=operator_headers)
    assert gone.status_code == 404


async def test_retrying_a_given_up_batch_makes_it_pending_with_a_fresh_budget(
    client, admin_app, operator_headers, failed_batch, session_factory
) -> None:
    response = await client.post(
        f"/v1/failures/telemetry_batch/{failed_batch.id}/retry", headers=operator_headers
    )

    assert response.status_code == 202, response.text
    assert response.json()["arq_job_id"] == f"process_batch:{failed_batch.id}"
    redis = AdminState.of(admin_app).resources.redis
    queued = deserialize_job(await redis.get(f"arq:job:process_batch:{failed_batch.id}"))
    assert queued.args == (str(failed_batch.id),)
    assert queued.kwargs == {"request_id": "ingest-request"}
    async with session_factory() as session:
        batch = await session.get(TelemetryBatch, failed_batch.id)
    assert (batch.status, batch.attempts, batch.error) == (BatchStatus.PENDING, 0, None)


@pytest.mark.parametrize("failure_id", ["not-a-uuid", "5b0c6a44-0d0e-4d5a-9a53-0c1d1e6a7f00"])
async def test_retrying_an_unknown_failure_is_a_404(client, operator_headers, failure_id) -> None:
    response = await client.post(f"/v1/failures/job/{failure_id}/retry", headers=operator_headers)
    assert response.status_code == 404


async def test_cancelling_a_queued_job_takes_it_off_the_queue_for_good(
    client, admin_app, operator_headers, add_job, session_factory
) -> None:
    job = await add_job(JobStatus.QUEUED)
    redis = AdminState.of(admin_app).resources.redis
    await redis.enqueue_job(job.kind, str(job.id), _job_id=job.arq_job_id)

    response = await client.post(f"/v1/jobs/{job.id}/cancel", headers=operator_headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert (
        await redis.zscore(AdminState.of(admin_app).settings.arq_queue_name, job.arq_job_id) is None
    )
    assert await redis.get(f"arq:job:{job.arq_job_id}") is None
    async with session_factory() as session:
        # A worker that had already dequeued it would find it finished and not run it.
        assert await mark_job_running(session=session, job_id=job.id) is None
        [entry] = await session.scalars(select(AuditLogEntry))
    assert entry.action == "job.cancel"
    again = await client.post(f"/v1/jobs/{job.id}/cancel", headers=operator_headers)
    assert again.status_code == 409
    assert again.json()["code"] == "job_not_queued"


async def test_a_running_job_cannot_be_cancelled(client, operator_headers, add_job) -> None:
    job = await add_job(JobStatus.RUNNING)
    response = await client.post(f"/v1/jobs/{job.id}/cancel", headers=operator_headers)
    assert response.status_code == 409


async def test_tracked_jobs_are_listed_and_filtered_by_status(
    client, operator_headers, add_job
) -> None:
    await add_job(JobStatus.QUEUED)
    failed = await add_job(JobStatus.FAILED)
    response = await client.get("/v1/jobs?status=failed", headers=operator_headers)
    assert [j["id"] for j in response.json()["items"]] == [str(failed.id)]
    one = await client.get(f"/v1/jobs/{failed.id}", headers=operator_headers)
    assert one.json()["request_id"] == "export-request"
