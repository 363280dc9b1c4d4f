"""Concurrency slots in Redis: at most N holders per key across every replica, on leases.

A slot is a member of a sorted set scored by its lease's expiry. Taking one first drops the
expired leases, then adds the holder if fewer than `limit` remain, in one Lua script (atomic
across replicas). A holder refreshes its lease while it runs (`hold_slot`) and removes it when
done; the lease is the safety net: a replica that crashes mid-download or mid-stream stops
refreshing, and its slots free themselves within `LEASE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("tripline.slots")

LEASE_SECONDS = 60.0
REFRESH_SECONDS = LEASE_SECONDS / 3

_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


async def take_slot(redis: Redis, key: str, *, limit: int) -> str | None:
    """A new holder ID if one of the `limit` slots of `key` was free, else None."""
    holder = uuid.uuid4().hex
    now = time.time()
    args = (str(now), str(limit), str(now + LEASE_SECONDS), holder, str(int(LEASE_SECONDS) + 1))
    taken = await redis.eval(_TAKE, 1, key, *args)  # type: ignore[misc]
    return holder if taken else None


async def refresh_slot(redis: Redis, key: str, holder: str) -> None:
    """Extend the holder's lease (only if it still holds the slot)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {holder: time.time() + LEASE_SECONDS}, xx=True)
        pipe.expire(key, int(LEASE_SECONDS) + 1)
        await pipe.execute()


async def release_slot(redis: Redis, key: str, holder: str) -> None:
    """Give the slot back."""
    await redis.zrem(key, holder)


class HeldSlot:
    """A taken slot: `start()` keeps its lease fresh, `release()` gives it back (once)."""

    def __init__(self, redis: Redis, key: str, holder: str) -> None:
        self.redis, self.key, self.holder = redis, key, holder
        self._refresher: asyncio.Task[None] | None = None
        self._released = False

    def start(self) -> None:
        if self._refresher is None and not self._released:
            self._refresher = asyncio.create_task(self._keep_refreshed())

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._refresher is not None:
            self._refresher.cancel()
        try:
            await release_slot(self.redis, self.key, self.holder)
        except Exception as exc:  # Redis down: the lease frees the slot.
            log.warning("slot_release_failed", key=self.key, error_type=type(exc).__name__)

    async def _keep_refreshed(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await refresh_slot(self.redis, self.key, self.holder)
            except Exception as exc:  # Redis blip: the next refresh (or the lease) covers it.
                log.warning("slot_refresh_failed", key=self.key, error_type=type(exc).__name__)


async def take_held_slot(redis: Redis, key: str, *, limit: int) -> HeldSlot | None:
    """`take_slot`, as a `HeldSlot`; None when all `limit` slots are taken."""
    holder = await take_slot(redis, key, limit=limit)
    return HeldSlot(redis, key, holder) if holder is not None else None
