"""Rate limits in Redis: fixed windows shared by every replica, answered with 429 + Retry-After."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from tripline_common.errors import RateLimitedError


async def enforce_rate_limit(redis: Redis, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one hit on `key`; raise 429 with `Retry-After` when the window's limit is passed.

    A fixed window (one counter per key and window, expiring with it) costs one round trip
    and is exact across replicas; its burst at window edges is at most 2 x limit.
    """
    now = time.time()
    window = int(now // window_seconds)
    counter = f"ratelimit:{key}:{window}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        count, _ = await pipe.execute()
    if count > limit:
        retry_after = max(1, int((window + 1) * window_seconds - now) + 1)
        raise RateLimitedError(retry_after, "Too many attempts; try again later.")
