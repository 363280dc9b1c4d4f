"""The queue's recent depth, for the console's chart: one sample per `STEP_SECONDS` slot, kept
by the admin's queue monitor in a small Redis sorted set that never holds more than a window.

Redis only knows the queue's depth now, so a history must be sampled. The queue monitor already
reads the queue every few seconds; it writes one sample when its slot changes, and trims what
has left the window in the same round trip. Every replica does so, and their samples of a slot
(taken moments apart) are merged by taking the largest: the set holds at most
`WINDOW_SECONDS / STEP_SECONDS` members per replica, however long the app runs.
"""

from __future__ import annotations

from arq.connections import ArqRedis

STEP_SECONDS = 15
"""One sample per this many seconds (the chart's resolution)."""
WINDOW_SECONDS = 15 * 60
"""How far back the history goes."""


def history_key(queue_name: str) -> str:
    """The sorted set of `queue_name`'s samples: members `<slot>:<depth>`, scored by slot."""
    return f"tripline:admin:queue_depth:{queue_name}"


def slot_of(timestamp: float) -> int:
    """The start (Unix seconds) of the slot that `timestamp` falls in."""
    return int(timestamp // STEP_SECONDS) * STEP_SECONDS


async def record_depth(redis: ArqRedis, queue_name: str, *, depth: int, at: float) -> None:
    """Store one sample for the slot of `at` and drop those older than the window, in one
    round trip; the key expires if no monitor writes for a whole window."""
    slot = slot_of(at)
    key = history_key(queue_name)
    pipe = redis.pipeline(transaction=True)
    pipe.zadd(key, {f"{slot}:{depth}": slot})
    pipe.zremrangebyscore(key, "-inf", f"({slot - WINDOW_SECONDS}")
    pipe.expire(key, WINDOW_SECONDS)
    await pipe.execute()


async def depth_history(redis: ArqRedis, queue_name: str, *, since: float) -> dict[int, int]:
    """The depth per slot from the slot of `since` on (the largest sample of each slot)."""
    members = await redis.zrangebyscore(history_key(queue_name), slot_of(since), "+inf")
    depths: dict[int, int] = {}
    for member in members:
        slot, _, depth = (member.decode() if isinstance(member, bytes) else member).partition(":")
        depths[int(slot)] = max(depths.get(int(slot), 0), int(depth))
    return depths
