"""Rate limits of the API's own endpoints, each refusal counted in the API's metrics."""

from __future__ import annotations

from fastapi import Request
from redis.asyncio import Redis

from tripline_api.state import ApiState
from tripline_common.platform import RateLimitedError
from tripline_common.security import enforce_rate_limit


async def enforce_limits(
    request: Request, redis: Redis, keys: list[str], limit: int, window: int, label: str
) -> None:
    """Count one hit on each key; a 429 (counted as `label` in the API's metrics) beyond
    `limit` hits per `window` seconds."""
    try:
        for key in keys:
            await enforce_rate_limit(redis, key, limit=limit, window_seconds=window)
    except RateLimitedError:
        ApiState.of(request.app).metrics.rate_limit_rejections.labels(label).inc()
        raise
