"""Operators' view of background work: tracked jobs, recent failures, retry and cancel.

What is recorded where, and so what an operator can honestly be shown:

- **Tracked jobs** (`jobs` table: imports, exports) are durable. Their status is the authority:
  the worker will not start a job that is no longer `queued` (`tripline_common.data.jobs.
  mark_job_running`), so cancelling is a row update (plus removing the job from the Redis queue
  so it is not even picked up), and retrying a failed one puts it back to `queued`.
- **Telemetry batches** the worker gave up on (`telemetry_batches.status = failed`) are durable
  too; a retry resets the batch to `pending` with a fresh attempt budget.
- **Anything else ARQ ran** leaves only its result in Redis, kept for the worker's
  `KEEP_RESULT` seconds (5 minutes by default). Those results are scanned (never with `KEYS`,
  which blocks Redis) and the failed ones shown while they last; a retry enqueues the same
  function with the same arguments and job ID. Jobs are idempotent by contract, so a retry is
  always safe; durable work that fails this way is also re-enqueued by the worker's sweepers.

A retry keeps the original correlation ID, as the sweepers do, so one grep shows the first run
and the retry; the audit entry has the operator's own request ID.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis
from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from arq.jobs import DeserializationError, JobResult, deserialize_result
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from tripline_admin.jobs.schemas import Failure, FailureSource, JobFilters, RetryAccepted
from tripline_common.data import AuditActor, AuditOrigin, audit, job_arq_id
from tripline_common.data.models import BatchStatus, Job, JobStatus, TelemetryBatch
from tripline_common.messaging import (
    PROCESS_BATCH,
    REQUEST_ID_KWARG,
    JobQueue,
    process_batch_job_id,
)
from tripline_common.platform import ConflictError, NotFoundError, get_request_id
from tripline_common.security import Principal
from tripline_common.web import PageParams, PageResult, SortSpec, fetch_page

JOB_SORT = SortSpec(
    columns={"created_at": col(Job.created_at)}, tiebreaker=col(Job.id), default="-created_at"
)
"""What job lists may be sorted on."""

ERROR_MAX = 500
RESULT_SCAN_LIMIT = 5000
"""Result keys looked at per listing, at most: bounds the cost when Redis holds many results."""


async def list_jobs(
    *, session: AsyncSession, filters: JobFilters, page: PageParams
) -> PageResult[Job]:
    """One page of tracked jobs matching `filters`."""
    statement = select(Job)
    if filters.status:
        statement = statement.where(col(Job.status).in_(filters.status))
    if filters.kind:
        statement = statement.where(col(Job.kind) == filters.kind)
    return await fetch_page(session, statement, page, JOB_SORT)


async def get_job(*, session: AsyncSession, job_id: uuid.UUID, lock: bool = False) -> Job:
    """A tracked job, or 404."""
    statement = select(Job).where(col(Job.id) == job_id)
    if lock:
        statement = statement.with_for_update()
    job = await session.scalar(statement)
    if job is None:
        raise NotFoundError("Job not found.", code="job_not_found")
    return job


async def cancel_job(
    *,
    session: AsyncSession,
    queue: JobQueue,
    actor: Principal,
    job_id: uuid.UUID,
    origin: AuditOrigin,
) -> Job:
    """Cancel a queued tracked job: it is marked `cancelled` (which the worker honours even if
    it already dequeued it) and removed from the Redis queue. 409 unless it is queued."""
    job = await get_job(session=session, job_id=job_id, lock=True)
    if job.status != JobStatus.QUEUED or await queue.redis.exists(
        in_progress_key_prefix + job.arq_job_id
    ):
        state = "running" if job.status == JobStatus.QUEUED else job.status.value
        raise ConflictError(
            f"Only a queued job can be cancelled; this one is {state}.", code="job_not_queued"
        )
    job.status = JobStatus.CANCELLED
    job.finished_at = datetime.now(UTC)
    job.error = "Cancelled by an operator."
    await session.flush()
    # Best effort: should the commit fail, the row stays queued and the sweeper re-enqueues it.
    await queue.redis.zrem(queue.queue_name, job.arq_job_id)
    await queue.redis.delete(job_key_prefix + job.arq_job_id)
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="job.cancel",
        target_type="job",
        target_id=job.id,
        details={"kind": job.kind, "arq_job_id": job.arq_job_id},
        origin=origin,
    )
    return job


# --- Failures ----------------------------------------------------------------------------------


async def recent_failures(
    *,
    session: AsyncSession,
    redis: ArqRedis,
    queue_name: str,
    limit: int,
    source: FailureSource | None = None,
) -> list[Failure]:
    """The `limit` most recent failures from every source (or one), newest first."""
    failures: list[Failure] = []
    if source in (None, FailureSource.JOB):
        failures += await _job_failures(session, limit)
    if source in (None, FailureSource.TELEMETRY_BATCH):
        failures += await _batch_failures(session, limit)
    if source in (None, FailureSource.ARQ):
        tracked = {failure_arq_id(f) for f in failures}
        failures += [f for f in await _arq_failures(redis, queue_name) if f.id not in tracked]
    oldest = datetime.min.replace(tzinfo=UTC)
    failures.sort(key=lambda f: f.failed_at or oldest, reverse=True)
    return failures[:limit]


def failure_arq_id(failure: Failure) -> str:
    """The ARQ job ID the failed work runs under."""
    if failure.source == FailureSource.JOB:
        return job_arq_id(failure.kind, failure.id)
    if failure.source == FailureSource.TELEMETRY_BATCH:
        return process_batch_job_id(failure.id)
    return failure.id


async def _job_failures(session: AsyncSession, limit: int) -> list[Failure]:
    jobs = await session.scalars(
        select(Job)
        .where(col(Job.status) == JobStatus.FAILED)
        .order_by(col(Job.finished_at).desc().nulls_last(), col(Job.id))
        .limit(limit)
    )
    return [
        Failure(
            source=FailureSource.JOB,
            id=str(job.id),
            kind=job.kind,
            error=(job.error or "failed without a message")[:ERROR_MAX],
            request_id=job.request_id,
            failed_at=job.finished_at,
            attempts=None,
        )
        for job in jobs
    ]


async def _batch_failures(session: AsyncSession, limit: int) -> list[Failure]:
    failed_at = func.coalesce(col(TelemetryBatch.processed_at), col(TelemetryBatch.received_at))
    batches = await session.scalars(
        select(TelemetryBatch)
        .where(col(TelemetryBatch.status) == BatchStatus.FAILED)
        .order_by(failed_at.desc(), col(TelemetryBatch.id))
        .limit(limit)
    )
    return [
        Failure(
            source=FailureSource.TELEMETRY_BATCH,
            id=str(batch.id),
            kind=PROCESS_BATCH,
            error=(batch.error or "given up without a message")[:ERROR_MAX],
            request_id=batch.request_id,
            failed_at=batch.processed_at or batch.received_at,
            attempts=batch.attempts,
        )
        for batch in batches
    ]


async def _arq_failures(redis: ArqRedis, queue_name: str) -> list[Failure]:
    keys: list[bytes] = []
    async for key in redis.scan_iter(match=result_key_prefix + "*", count=500):
        keys.append(key)
        if len(keys) >= RESULT_SCAN_LIMIT:
            break
    failures: list[Failure] = []
    for start in range(0, len(keys), 200):
        chunk = keys[start : start + 200]
        for key, raw in zip(chunk, await redis.mget(chunk), strict=True):
            result = _result(raw)
            if result is None or result.success or result.queue_name != queue_name:
                continue
            job_id = key.decode()[len(result_key_prefix) :]
            failures.append(_arq_failure(job_id, result))
    return failures


def _result(raw: bytes | None) -> JobResult | None:
    # ARQ pickles results; Redis is inside the trust boundary (ARQ itself unpickles job
    # definitions from it), so reading them here adds no new exposure.
    if raw is None:
        return None
    try:
        return deserialize_result(raw)
    except DeserializationError:
        return None


def _describe(error: Any) -> str:
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = str(error)
    return text[:ERROR_MAX]


def _arq_failure(job_id: str, result: JobResult) -> Failure:
    return Failure(
        source=FailureSource.ARQ,
        id=job_id,
        kind=result.function,
        error=_describe(result.result),
        request_id=(result.kwargs or {}).get(REQUEST_ID_KWARG),
        failed_at=result.finish_time,
        attempts=result.job_try,
    )


async def retry_failure(
    *,
    session: AsyncSession,
    queue: JobQueue,
    actor: Principal,
    source: FailureSource,
    failure_id: str,
    origin: AuditOrigin,
) -> RetryAccepted:
    """Send a failure back to the queue (after commit), under its original correlation ID."""
    if source == FailureSource.JOB:
        function, args, kwargs, arq_job_id = await _reset_job(session, failure_id)
    elif source == FailureSource.TELEMETRY_BATCH:
        function, args, kwargs, arq_job_id = await _reset_batch(session, failure_id)
    else:
        function, args, kwargs, arq_job_id = await _failed_arq_job(queue, failure_id)
    redis = queue.redis
    if await redis.exists(job_key_prefix + arq_job_id, in_progress_key_prefix + arq_job_id):
        raise ConflictError("This job is already queued or running.", code="job_already_queued")
    # The kept result (and try counter) would make ARQ refuse the job ID; the failure it records
    # stays in the audit entry below and in the logs.
    await redis.delete(result_key_prefix + arq_job_id, retry_key_prefix + arq_job_id)
    request_id = kwargs.pop(REQUEST_ID_KWARG, None) or get_request_id()
    queue.enqueue_after_commit(
        session, function, *args, job_id=arq_job_id, **{REQUEST_ID_KWARG: request_id}, **kwargs
    )
    await audit.record(
        session,
        actor=AuditActor.of(actor),
        action="job.retry",
        target_type=source.value,
        target_id=failure_id,
        details={"kind": function, "arq_job_id": arq_job_id, "work_request_id": request_id},
        origin=origin,
    )
    return RetryAccepted(source=source, id=failure_id, arq_job_id=arq_job_id, request_id=request_id)


Enqueueable = tuple[str, tuple[Any, ...], dict[str, Any], str]


def _uuid_or_404(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFoundError(f"{what} not found.", code="failure_not_found") from None


async def _reset_job(session: AsyncSession, failure_id: str) -> Enqueueable:
    job = await get_job(session=session, job_id=_uuid_or_404(failure_id, "Job"), lock=True)
    if job.status != JobStatus.FAILED:
        raise ConflictError(
            f"Only a failed job can be retried; this one is {job.status.value}.",
            code="not_failed",
        )
    job.status = JobStatus.QUEUED
    job.error = None
    job.result = None
    job.progress = 0
    job.started_at = None
    job.finished_at = None
    await session.flush()
    return job.kind, (str(job.id),), {REQUEST_ID_KWARG: job.request_id}, job.arq_job_id


async def _reset_batch(session: AsyncSession, failure_id: str) -> Enqueueable:
    batch_id = _uuid_or_404(failure_id, "Telemetry batch")
    batch = await session.scalar(
        select(TelemetryBatch).where(col(TelemetryBatch.id) == batch_id).with_for_update()
    )
    if batch is None:
        raise NotFoundError("Telemetry batch not found.", code="failure_not_found")
    if batch.status != BatchStatus.FAILED:
        raise ConflictError(
            f"Only a failed batch can be retried; this one is {batch.status.value}.",
            code="not_failed",
        )
    batch.status = BatchStatus.PENDING
    batch.attempts = 0
    batch.error = None
    batch.processed_at = None
    await session.flush()
    return (
        PROCESS_BATCH,
        (str(batch.id),),
        {REQUEST_ID_KWARG: batch.request_id},
        process_batch_job_id(batch.id),
    )


async def _failed_arq_job(queue: JobQueue, failure_id: str) -> Enqueueable:
    result = _result(await queue.redis.get(result_key_prefix + failure_id))
    if result is None or result.queue_name != queue.queue_name:
        raise NotFoundError(
            "No result for this job: ARQ keeps results only briefly (KEEP_RESULT).",
            code="failure_not_found",
        )
    if result.success:
        raise ConflictError("This job succeeded; there is nothing to retry.", code="not_failed")
    return result.function, tuple(result.args), dict(result.kwargs or {}), failure_id
