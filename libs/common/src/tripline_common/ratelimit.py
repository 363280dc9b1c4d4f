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
    count = await count_hit(redis, key, window_seconds=window_seconds)
    if count > limit:
        raise RateLimitedError(_retry_after(window_seconds), "Too many attempts; try again later.")


async def count_hit(redis: Redis, key: str, *, window_seconds: int) -> int:
    """Count one hit on `key` in the current fixed window; the window's count so far."""
    counter = _counter(key, window_seconds)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        count, _ = await pipe.execute()
    return int(count)


async def ensure_under_limit(
    redis: Redis, key: str, *, limit: int, window_seconds: int, message: str
) -> None:
    """Raise 429 with `Retry-After` when `key` already has `limit` hits in the current window
    (counted by `count_hit`), without counting one: for limits on outcomes (failures) that are
    only known after the work the limit protects."""
    count = await redis.get(_counter(key, window_seconds))
    if count is not None and int(count) >= limit:
        raise RateLimitedError(_retry_after(window_seconds), message)


def _counter(key: str, window_seconds: int) -> str:
    return f"ratelimit:{key}:{int(time.time() // window_seconds)}"


def _retry_after(window_seconds: int) -> int:
    """Seconds until the current window ends (at least 1)."""
    now = time.time()
    window_end = (int(now // window_seconds) + 1) * window_seconds
    return max(1, int(window_end - now) + 1)
