"""What a queue holds, read from the keys a real ARQ worker leaves in a real Redis: ready,
deferred, in progress and retrying jobs at once, where the sorted set's size is not the backlog."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq import Retry, Worker
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import retry_key_prefix
from arq.worker import func

from tripline_common.messaging import read_queue_state

WAIT = 10.0


async def until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {WAIT}s: {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def arq_worker(redis: ArqRedis, queue: str) -> AsyncIterator[tuple[Worker, asyncio.Event]]:
    """A real ARQ worker on `queue` running one job at a time: `flaky` asks for a retry an hour
    later on its first try, `hold` runs until the event is set."""
    release = asyncio.Event()

    async def flaky(ctx: dict[str, Any]) -> None:
        if ctx["job_try"] == 1:
            raise Retry(defer=3600)

    async def hold(ctx: dict[str, Any]) -> None:
        await release.wait()

    worker = Worker(
        functions=[func(flaky, name="flaky"), func(hold, name="hold")],
        queue_name=queue,
        redis_pool=redis,
        max_jobs=1,
        poll_delay=0.02,
        handle_signals=False,
        keep_result=0,
    )
    task = asyncio.create_task(worker.main())
    try:
        yield worker, release
    finally:
        worker.allow_pick_jobs = False
        release.set()
        task.cancel()
        await asyncio.gather(task, *worker.tasks.values(), return_exceptions=True)


async def test_ready_deferred_running_and_retrying_jobs_are_told_apart(redis_url: str) -> None:
    queue = f"tripline:test:{uuid.uuid4().hex[:8]}"
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    job = {name: f"{name}-{uuid.uuid4().hex[:8]}" for name in ("a", "b", "h", "r1", "r2", "d")}

    def score_of(name: str) -> Any:
        return redis.zscore(queue, job[name])

    try:
        async with arq_worker(redis, queue) as (worker, _):
            # Two jobs run once and ask for a retry in an hour: back in the queue, deferred.
            for name in ("a", "b"):
                await redis.enqueue_job("flaky", _job_id=job[name], _queue_name=queue)

            async def retried() -> bool:
                scores = [await score_of(name) or 0 for name in "ab"]
                return all(score > time.time() * 1000 + 3_000_000 for score in scores)

            await until(retried, "both flaky jobs deferred by their Retry")
            assert await redis.get(retry_key_prefix + job["a"]) == b"1"  # ARQ's try counter.

            # One job runs (and holds the worker's only slot).
            await redis.enqueue_job("hold", _job_id=job["h"], _queue_name=queue)

            async def holding() -> bool:
                return job["h"] in worker.tasks

            await until(holding, "the worker running the hold job")
            # The hour of `b` has passed (its score moved, as time would): due again, a retry.
            await redis.zadd(queue, {job["b"]: time.time() * 1000 - 120_000}, xx=True)
            # Two new jobs due now, and one deferred by its enqueuer.
            for name in ("r1", "r2"):
                await redis.enqueue_job("hold", _job_id=job[name], _queue_name=queue)
            await redis.enqueue_job("hold", _job_id=job["d"], _queue_name=queue, _defer_by=3600)
            # A job of another queue, running: not ours.
            await redis.zadd(f"{queue}:other", {job["h"] + "-x": 1})
            await redis.set(f"arq:in-progress:{job['h']}-x", b"1")

            state = await read_queue_state(redis, queue)
            size = await redis.zcard(queue)

        assert size == 6  # What a Redis-cardinality scaler would see.
        assert (state.ready, state.deferred, state.in_progress) == (3, 2, 1)  # b, r1, r2 | a, d | h
        assert state.retrying == 2  # a (deferred) and b (ready): both will run a second try.
        assert state.ready + state.deferred + state.in_progress == size
        # The oldest ready job is the retry made due two minutes ago, not the running one.
        assert 120 <= state.oldest_ready_age_seconds < 3600
        assert state.scanned_all
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_an_empty_queue_has_nothing_ready_and_no_age(redis_url: str) -> None:
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        state = await read_queue_state(redis, "tripline:test:empty")
    finally:
        await redis.aclose()
    assert (state.ready, state.deferred, state.in_progress, state.retrying) == (0, 0, 0, 0)
    assert state.oldest_ready_age_seconds == 0


async def test_past_the_scan_limit_ready_and_deferred_stay_exact(redis_url: str) -> None:
    redis = await create_pool(RedisSettings.from_dsn(redis_url))
    queue = "tripline:test:long"
    now_ms = time.time() * 1000
    try:
        await redis.zadd(queue, {f"due-{n}": now_ms - 60_000 + n for n in range(5)})
        await redis.zadd(queue, {f"later-{n}": now_ms + 3_600_000 for n in range(3)})
        await redis.set("arq:in-progress:due-0", b"1")  # The head: where workers take jobs.
        state = await read_queue_state(redis, queue, scan_limit=2)
    finally:
        await redis.flushdb()
        await redis.aclose()
    assert not state.scanned_all
    assert (state.ready, state.deferred, state.in_progress) == (4, 3, 1)
    assert 59 <= state.oldest_ready_age_seconds < 3600  # due-1, the oldest not running.
