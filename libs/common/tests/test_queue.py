"""`queue.py`, pure parts: deterministic job IDs, and the correlation ID a job runs under
(enqueueing through Redis is proved by `test_app_behaviour.py`)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.correlation import bind_request_id, get_request_id
from tripline_common.queue import (
    DELIVER_WEBHOOK,
    PROCESS_BATCH,
    JobQueue,
    deliver_webhook_job_id,
    process_batch_job_id,
    traced_job,
)

# --- job IDs ------------------------------------------------------------------------------------


def test_a_batch_has_one_job_id_whether_a_producer_holds_its_id_as_uuid_or_text() -> None:
    # Ingest holds a UUID, the sweeper reads text back from a row: one ID, so one run.
    batch_id = uuid.uuid4()

    assert process_batch_job_id(batch_id) == process_batch_job_id(str(batch_id))
    assert process_batch_job_id(batch_id) == f"{PROCESS_BATCH}:{batch_id}"


def test_a_batch_and_a_webhook_delivery_never_share_a_job_id() -> None:
    same = uuid.uuid4()

    assert process_batch_job_id(same) != deliver_webhook_job_id(same)
    assert deliver_webhook_job_id(same) == f"{DELIVER_WEBHOOK}:{same}"


# --- correlation inside a job -------------------------------------------------------------------


@traced_job
async def report(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """A job that reports what it received and the correlation ID it ran under."""
    return {"request_id": get_request_id(), "args": args, "kwargs": kwargs}


async def test_a_job_runs_under_the_request_id_it_was_enqueued_with() -> None:
    seen = await report({"job_id": "j1", "job_try": 1}, "batch", request_id="rid-42", extra=1)

    assert seen == {"request_id": "rid-42", "args": ("batch",), "kwargs": {"extra": 1}}
    assert get_request_id() is None  # Nothing leaks into the next job on this task.


async def test_a_job_enqueued_without_a_request_id_gets_a_fresh_one_per_run() -> None:
    first = await report({"job_id": "cron"})
    second = await report({"job_id": "cron"}, request_id=None)

    assert first["request_id"] and second["request_id"]
    assert first["request_id"] != second["request_id"]
    assert len(first["request_id"]) == 32


async def test_a_failing_job_raises_its_own_error_and_still_clears_its_request_id() -> None:
    @traced_job
    async def broken(ctx: dict[str, Any]) -> None:
        raise LookupError("the job's own failure")

    bind_request_id("left-by-someone-else")
    with pytest.raises(LookupError, match="the job's own failure"):
        await broken({"job_id": "j2"}, request_id="rid-7")

    assert get_request_id() is None


# --- deferring a job ----------------------------------------------------------------------------


def test_deferring_a_job_outside_a_unit_of_work_is_a_programming_error() -> None:
    # No Redis call is made: the refusal comes before anything is queued.
    queue = JobQueue(ArqRedis(), "unused")

    with pytest.raises(RuntimeError, match="unit_of_work"):
        queue.enqueue_after_commit(AsyncSession(), PROCESS_BATCH, "b", job_id="process_batch:b")
