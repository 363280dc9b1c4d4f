"""Ingest's rate limits in Redis, shared by every replica and failing open: per device, and per
client on key lookups that found no device."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from enum import StrEnum
from typing import ClassVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tripline_common.security import RatePolicy, count_hit, enforce_rate_limit, ensure_under_limit

log = structlog.get_logger("tripline.ingest.limits")

DEVICE_UPLOADS = RatePolicy("device", "device_rate_limit", "device_rate_window_seconds")
FAILED_KEY_LOOKUPS = RatePolicy(
    "failed-key-lookups", "failed_key_lookup_limit", "failed_key_lookup_window_seconds"
)


class LimitCheck(StrEnum):
    """What a limit check let through. Over the limit is not a result: the check raises
    `RateLimitedError` (429 with `Retry-After`), as every refusal does."""

    ALLOWED = "allowed"  # Redis answered: under the limit.
    UNCHECKED = "unchecked"  # Redis did not answer in time: let through without a check.


class _FailOpenLimit:
    """A limit kept in Redis that lets requests through when Redis is slow or down.

    Telemetry must keep flowing into Postgres through a Redis outage; the outage shows in
    `/readyz`, in the `UNCHECKED` answers a caller may count, and in one warning line per
    10 seconds (`warning`), not one per request.
    """

    warning: ClassVar[str]
    policy: ClassVar[RatePolicy]

    def __init__(self, redis: Redis, settings: object, *, timeout: float) -> None:
        self.redis = redis
        self.limit = self.policy.limit(settings)
        self.window_seconds = self.policy.window(settings)
        self.timeout = timeout
        self.unchecked = 0
        self._last_warning = 0.0

    async def _ask(self, redis_call: Awaitable[object]) -> LimitCheck:
        """Await `redis_call` within `timeout`; UNCHECKED when Redis did not answer."""
        try:
            async with asyncio.timeout(self.timeout):
                await redis_call
        except (RedisError, OSError, TimeoutError) as exc:
            self.unchecked += 1
            now = time.monotonic()
            if now - self._last_warning >= 10:
                self._last_warning = now
                log.warning(self.warning, error_type=type(exc).__name__, unchecked=self.unchecked)
            return LimitCheck.UNCHECKED
        return LimitCheck.ALLOWED


class DeviceRateLimiter(_FailOpenLimit):
    """Uploads per device and window (`DEVICE_RATE_LIMIT` per `DEVICE_RATE_WINDOW_SECONDS`).

    Its caller counts `UNCHECKED` in `tripline_ingest_rate_limit_unchecked_total`.
    """

    warning = "rate_limit_unchecked"
    policy = DEVICE_UPLOADS

    async def check(self, device_id: uuid.UUID) -> LimitCheck:
        """Count one upload of `device_id`; raise 429 past the limit."""
        return await self._ask(
            enforce_rate_limit(
                self.redis,
                f"device:{device_id}",
                policy=self.policy.name,
                limit=self.limit,
                window_seconds=self.window_seconds,
            )
        )


class FailedLookupLimiter(_FailOpenLimit):
    """Key lookups per client address that found no device (`FAILED_KEY_LOOKUP_LIMIT` per
    window).

    Keys are random, so the negative cache cannot stop a client sending a new unknown key each
    time: this bounds what such a client costs the database to `limit` queries per window.
    """

    warning = "failed_lookup_limit_unchecked"
    policy = FAILED_KEY_LOOKUPS

    async def check(self, client: str) -> LimitCheck:
        """Raise 429 when `client` used up its failed lookups in this window (counts nothing:
        a lookup's outcome is only known after it, see `count`)."""
        return await self._ask(
            ensure_under_limit(
                self.redis,
                f"device-key-failures:{client}",
                policy=self.policy.name,
                limit=self.limit,
                window_seconds=self.window_seconds,
                message="Too many unknown device keys from this client; try again later.",
            )
        )

    async def count(self, client: str) -> None:
        """Count one lookup by `client` that found no device (not counted when Redis does not
        answer)."""
        await self._ask(
            count_hit(
                self.redis,
                f"device-key-failures:{client}",
                policy=self.policy.name,
                limit=self.limit,
                window_seconds=self.window_seconds,
            )
        )
