"""Devices at the door of ingest: API-key authentication with a short cache, per-device limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.apikeys import hash_api_key
from tripline_common.errors import UnauthorizedError
from tripline_common.models import Device
from tripline_common.ratelimit import enforce_rate_limit

log = structlog.get_logger("tripline.ingest.devices")


@dataclass(frozen=True)
class AuthenticatedDevice:
    """The device a request is from (what ingest needs of it, cacheable)."""

    id: uuid.UUID
    owner_id: uuid.UUID


class DeviceKeyCache:
    """Recent key lookups, by key hash, each reused for `ttl` seconds (bounded, LRU).

    Every device posts every few seconds, so without it each upload would cost a database
    round trip just to authenticate. The price is revocation latency: a revoked key keeps
    working for at most `ttl` seconds on each replica. Unknown keys are not cached, so a key
    created a moment ago works at once.
    """

    def __init__(self, ttl: float, max_size: int) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: OrderedDict[str, tuple[float, AuthenticatedDevice]] = OrderedDict()
        self._last_seen_written: dict[uuid.UUID, float] = {}

    def get(self, key_hash: str) -> AuthenticatedDevice | None:
        """The cached device for this key hash, if looked up less than `ttl` seconds ago."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if time.monotonic() - entry[0] >= self.ttl:
            del self._entries[key_hash]
            return None
        self._entries.move_to_end(key_hash)
        return entry[1]

    def put(self, key_hash: str, device: AuthenticatedDevice) -> None:
        """Remember a successful lookup (a no-op when the TTL is 0)."""
        if self.ttl <= 0:
            return
        self._entries[key_hash] = (time.monotonic(), device)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)

    def last_seen_due(self, device_id: uuid.UUID, interval: float) -> bool:
        """True (and noted) when `devices.last_seen_at` was not written for `interval` seconds
        by this process. Throttling the write keeps the device row from becoming a lock every
        concurrent upload of that device queues on."""
        now = time.monotonic()
        last = self._last_seen_written.get(device_id)
        if last is not None and now - last < interval:
            return False
        if len(self._last_seen_written) >= self.max_size:
            self._last_seen_written.clear()  # Worst case: one extra write per device.
        self._last_seen_written[device_id] = now
        return True


async def authenticate_device(
    *, session: AsyncSession, cache: DeviceKeyCache, api_key: str | None
) -> AuthenticatedDevice:
    """The active device owning `api_key`, or 401.

    The key may be the device's current one or, until `previous_key_expires_at`, the one an
    operator's rotation replaced (zero-downtime rotation: the fleet moves to the new key while
    the old one still works). A revoked device's keys are both refused."""
    if not api_key:
        raise UnauthorizedError("Send the device's API key in the X-Device-Key header.")
    key_hash = hash_api_key(api_key)
    device = cache.get(key_hash)
    if device is not None:
        return device
    row = (
        await session.execute(
            select(Device.id, Device.owner_id).where(
                or_(
                    col(Device.api_key_hash) == key_hash,
                    and_(
                        col(Device.previous_api_key_hash) == key_hash,
                        col(Device.previous_key_expires_at) > func.now(),
                    ),
                ),
                col(Device.revoked_at).is_(None),
            )
        )
    ).first()
    if row is None:
        raise UnauthorizedError("Unknown or revoked device key.", code="invalid_device_key")
    device = AuthenticatedDevice(id=row.id, owner_id=row.owner_id)
    cache.put(key_hash, device)
    return device


class DeviceRateLimiter:
    """Per-device upload limit in Redis (shared by every replica), failing open.

    When Redis is slow or down the upload is let through: telemetry keeps flowing into
    Postgres, which is what must not stop, and the outage shows in `/readyz`, in the
    `..._rate_limit_bypassed_total` metric and in one warning log line per 10 seconds.
    """

    def __init__(self, redis: Redis, *, limit: int, window_seconds: int, timeout: float) -> None:
        self.redis = redis
        self.limit = limit
        self.window_seconds = window_seconds
        self.timeout = timeout
        self.bypassed = 0
        self._last_warning = 0.0

    async def check(self, device_id: uuid.UUID) -> bool:
        """Count one upload; raise 429 past the limit. False when the limit was not checked."""
        try:
            async with asyncio.timeout(self.timeout):
                await enforce_rate_limit(
                    self.redis,
                    f"device:{device_id}",
                    limit=self.limit,
                    window_seconds=self.window_seconds,
                )
        except (RedisError, OSError, TimeoutError) as exc:
            self.bypassed += 1
            now = time.monotonic()
            if now - self._last_warning >= 10:
                self._last_warning = now
                log.warning(
                    "rate_limit_unchecked", error_type=type(exc).__name__, bypassed=self.bypassed
                )
            return False
        return True
