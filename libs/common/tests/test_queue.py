"""`queue.py`, pure parts: the correlation ID a job runs under, and no enqueue outside a unit of
work (enqueueing through Redis is proved by `test_app_behaviour.py`)."""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from tripline_common.messaging import JobQueue, correlated_job
from tripline_common.platform import get_request_id
from tripline_common.platform.correlation import bind_request_id

# --- correlation inside a job -------------------------------------------------------------------


@correlated_job
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
    @correlated_job
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
        queue.enqueue_after_commit(AsyncSession(), "process_batch", "b", job_id="process_batch:b")
