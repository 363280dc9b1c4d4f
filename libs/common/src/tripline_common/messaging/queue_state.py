"""What an ARQ queue holds, read from Redis: ready, deferred, in progress, retrying, oldest ready.

How ARQ stores a queue (arq 0.28, `arq/worker.py`): one sorted set per queue, the job IDs
scored by the time (ms) they are due. A job stays in the set while a worker runs it; the worker
marks it with an `arq:in-progress:<id>` key (`start_jobs`). At the start of each run it
increments `arq:retry:<id>` (`run_job`: the counter *is* `job_try`), and it deletes that key only
when the job is finished for good (`finish_job`, `finish_failed_job`). A job that raised `Retry`,
or whose run was cancelled (a worker stopping), goes back to waiting with its counter kept and,
for `Retry(defer=...)`, its score moved later. So the cardinality of the set counts ready,
deferred and running jobs together, and a retry is a waiting job whose `arq:retry:<id>` exists:
its next run will have `job_try` > 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, retry_key_prefix

SCAN_LIMIT = 10_000
"""Jobs at the head of a queue whose in-progress and retry keys are read per refresh."""


@dataclass(frozen=True)
class QueueState:
    """One queue at one moment. `ready + deferred + in_progress` is the sorted set's
    cardinality; `retrying` is the part of `ready + deferred` that waits for another try."""

    queue: str
    ready: int
    """Due now and not running: work a worker could start this instant."""
    deferred: int
    """Due later (deferred by its enqueuer or by a `Retry`), not running."""
    in_progress: int
    """Running on a worker now."""
    retrying: int
    """Waiting (ready or deferred) for a retry: it has run before and will run again."""
    oldest_ready_age_seconds: float
    """How long the oldest ready job has been due; 0 when none is ready."""
    scanned_all: bool
    """False when the queue held more than the scan limit: `in_progress` and `retrying` then
    count only the jobs at its head (the earliest due), where workers take jobs from."""


async def read_queue_state(
    redis: ArqRedis, queue_name: str, scan_limit: int = SCAN_LIMIT
) -> QueueState:
    """Read one queue's state in two round trips.

    The first, a transaction, takes the set's size, its due count and its head (the first
    `scan_limit` jobs by due time) at one instant. The second reads each head job's in-progress
    and retry keys. Workers take jobs from the head, so running jobs are found there unless more
    than `scan_limit` run at once.
    """
    now_ms = time.time() * 1000
    async with redis.pipeline(transaction=True) as tx:
        tx.zcard(queue_name)
        tx.zcount(queue_name, "-inf", now_ms)
        tx.zrange(queue_name, 0, scan_limit - 1, withscores=True)
        total, due, head = await tx.execute()
    flags: list[int] = []
    if head:
        async with redis.pipeline(transaction=False) as pipe:
            for job_id, _ in head:
                pipe.exists(in_progress_key_prefix + job_id.decode())
                pipe.exists(retry_key_prefix + job_id.decode())
            flags = await pipe.execute()
    running_due = running_later = retrying = 0
    oldest_ready_ms: float | None = None
    for index, (_, score) in enumerate(head):
        running, retried = flags[2 * index], flags[2 * index + 1]
        is_due = score <= now_ms
        if running:
            running_due += is_due
            running_later += not is_due
            continue
        retrying += bool(retried)
        if is_due and oldest_ready_ms is None:
            oldest_ready_ms = score  # The head is in due order: the first one is the oldest.
    oldest_age = 0.0 if oldest_ready_ms is None else max(0.0, (now_ms - oldest_ready_ms) / 1000)
    return QueueState(
        queue=queue_name,
        ready=due - running_due,
        deferred=total - due - running_later,
        in_progress=running_due + running_later,
        retrying=retrying,
        oldest_ready_age_seconds=round(oldest_age, 3),
        scanned_all=len(head) == total,
    )
