"""Queue health for operators: one queue's state, as the admin API and console show it."""

from __future__ import annotations

from arq.connections import ArqRedis

from tripline_admin.queues.schemas import QueueStats
from tripline_common.messaging import read_queue_state


async def queue_health(*, redis: ArqRedis, queue_name: str) -> QueueStats:
    """The queue's state now (`read_queue_state`) in the API's terms: `queued` is what waits
    (ready or deferred), `due` what is ready."""
    state = await read_queue_state(redis, queue_name)
    return QueueStats(
        queue=state.queue,
        queued=state.ready + state.deferred,
        due=state.ready,
        oldest_due_age_seconds=state.oldest_ready_age_seconds,
        in_progress=state.in_progress,
    )
