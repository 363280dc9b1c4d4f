"""Batch jobs, run as the worker runs them (wrapped and instrumented), on the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from arq.jobs import deserialize_job
from prometheus_client import CollectorRegistry

from tripline_common.models import BatchStatus, Device, TelemetryBatch, User
from tripline_common.queue import JobQueue, create_redis
from tripline_worker.metrics import JobMetrics
from tripline_worker.runner import WorkerSettings
from tripline_worker.settings import WorkerServiceSettings


@pytest.fixture
async def ctx(make_settings, session_factory):
    settings = make_settings(WorkerServiceSettings, batch_requeue_after_seconds=60)
    redis = create_redis(settings)
    registry = CollectorRegistry()
    yield {
        "settings": settings,
        "session_factory": session_factory,
        "queue": JobQueue(redis, settings.arq_queue_name),
        "metrics": JobMetrics(registry),
        "registry": registry,
        "job_id": "test-job",
        "job_try": 1,
    }
    await redis.aclose()


async def add_batch(session_factory, *, age: timedelta, request_id: str = "rid") -> uuid.UUID:
    async with session_factory() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com", display_name="U", password_hash="x")
        session.add(user)
        await session.flush()
        device = Device(
            owner_id=user.id, name="d", api_key_prefix="tl_x", api_key_hash=uuid.uuid4().hex
        )
        session.add(device)
        await session.flush()
        batch = TelemetryBatch(
            device_id=device.id,
            event_count=3,
            received_at=datetime.now(UTC) - age,
            request_id=request_id,
        )
        session.add(batch)
        await session.commit()
        return batch.id


def job(name: str):
    functions = {f.name: f for f in WorkerSettings.functions}
    functions.update({c.name: c for c in WorkerSettings.cron_jobs})
    return functions[name].coroutine


async def test_process_batch_marks_it_processed_once(ctx, session_factory) -> None:
    batch_id = await add_batch(session_factory, age=timedelta(0))
    process = job("process_batch")
    assert await process(ctx, str(batch_id), request_id="rid-1") == "processed"
    assert await process(ctx, str(batch_id), request_id="rid-1") == "already_processed"
    async with session_factory() as session:
        batch = await session.get(TelemetryBatch, batch_id)
    assert batch.status is BatchStatus.PROCESSED and batch.attempts == 1
    assert batch.processed_at is not None
    finished = ctx["registry"].get_sample_value(
        "tripline_worker_jobs_finished_total", {"function": "process_batch", "outcome": "succeeded"}
    )
    assert finished == 2


async def test_sweeper_requeues_only_old_pending_batches(ctx, session_factory, redis_url) -> None:
    old = await add_batch(session_factory, age=timedelta(minutes=5), request_id="rid-old")
    await add_batch(session_factory, age=timedelta(seconds=1))
    requeue = job("requeue_stuck_batches")
    assert await requeue(ctx) == 1
    assert await requeue(ctx) == 0  # Same deterministic job ID: not enqueued twice.
    redis = ctx["queue"].redis
    payload = deserialize_job(await redis.get(f"arq:job:process_batch:{old}"))
    assert payload.args == (str(old),)
    assert payload.kwargs == {"request_id": "rid-old"}  # The original story continues.
