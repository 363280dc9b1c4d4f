"""User-visible jobs: the `jobs` row follows the ARQ job from queued to its result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from arq.jobs import deserialize_job
from sqlalchemy import update
from worker_factories import job

from tripline_common.data import create_job, get_job, unit_of_work
from tripline_common.data.models import Job, JobStatus
from tripline_worker.jobs.tracking import report_progress, tracked_job


@tracked_job
async def count_words(ctx, job: Job) -> dict:
    await report_progress(ctx, job, 50)
    if job.params.get("fail"):
        raise ValueError("secret internals")
    return {"words": len(job.params["text"].split())}


async def new_job(ctx, owner, **params) -> Job:
    async with unit_of_work(ctx["session_factory"], ctx["queue"]) as session:
        return await create_job(
            session=session, queue=ctx["queue"], kind="count_words", owner_id=owner, params=params
        )


async def test_a_job_is_queued_after_commit_with_its_id_as_only_argument(ctx, make_owner) -> None:
    owner = await make_owner()
    created = await new_job(ctx, owner.user_id, text="a b c")
    assert created.status is JobStatus.QUEUED
    assert created.arq_job_id == f"count_words:{created.id}"
    queued = deserialize_job(await ctx["queue"].redis.get(f"arq:job:{created.arq_job_id}"))
    assert queued.function == "count_words" and queued.args == (str(created.id),)


async def test_a_tracked_job_runs_to_its_result(ctx, session_factory, make_owner) -> None:
    owner = await make_owner()
    created = await new_job(ctx, owner.user_id, text="one two three")
    assert await count_words(ctx, str(created.id)) == "succeeded"
    async with session_factory() as session:
        done = await get_job(session=session, job_id=created.id, owner_id=owner.user_id)
        hidden = await get_job(session=session, job_id=created.id, owner_id=owner.device_id)
    assert done.status is JobStatus.SUCCEEDED and done.progress == 100
    assert done.result == {"words": 3}
    assert done.started_at is not None and done.finished_at is not None
    assert hidden is None  # Someone else's job does not exist for them.
    assert await count_words(ctx, str(created.id)) == "not_runnable"  # Finished: not rerun.


async def test_a_failed_job_tells_the_client_only_what_is_safe(
    ctx, session_factory, make_owner
) -> None:
    owner = await make_owner()
    created = await new_job(ctx, owner.user_id, fail=True)
    with pytest.raises(ValueError, match="secret internals"):  # ARQ records it as failed.
        await count_words(ctx, str(created.id))
    async with session_factory() as session:
        failed = await session.get(Job, created.id, populate_existing=True)
    assert failed.status is JobStatus.FAILED
    assert "secret" not in failed.error and "request ID" in failed.error


async def test_jobs_lost_between_postgres_and_redis_are_requeued(
    ctx, session_factory, make_owner
) -> None:
    owner = await make_owner()
    lost = await new_job(ctx, owner.user_id, text="x")
    await ctx["queue"].redis.flushdb()
    async with session_factory() as session:
        await session.execute(
            update(Job)
            .where(Job.id == lost.id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
        await session.commit()
    requeue = job("requeue_stuck_jobs")
    assert await requeue(ctx) == 1
    assert await requeue(ctx) == 0
    assert await ctx["queue"].redis.exists(f"arq:job:{lost.arq_job_id}")
