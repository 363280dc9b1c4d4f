"""Devices at the door of ingest: who is calling (API key, with a short cache), and when to
record them as seen."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from tripline_common.data.models import Device
from tripline_common.platform import UnauthorizedError
from tripline_common.security import hash_api_key
from tripline_ingest.telemetry.limits import FailedLookupLimiter


@dataclass(frozen=True)
class AuthenticatedDevice:
    """The device a request is from (what ingest needs of it, cacheable)."""

    id: uuid.UUID
    owner_id: uuid.UUID


class DeviceKeyCache:
    """Recent key lookups, by key hash, each reused for `ttl` seconds (bounded, LRU).

    Every device posts every few seconds, so without it each upload would cost a database
    round trip just to authenticate. The price is revocation latency: a revoked key keeps
    working for at most `ttl` seconds on each replica.

    Keys the database did not know are remembered too, for `negative_ttl` seconds (a device
    retrying with a revoked key costs one query per `negative_ttl`, not one per upload). Both
    maps hold at most `max_size` entries, oldest dropped first, so random keys cannot grow
    memory. A key that was tried before it existed works at most `negative_ttl` seconds after
    it was issued.
    """

    def __init__(self, ttl: float, max_size: int, negative_ttl: float = 0.0) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self.negative_ttl = negative_ttl
        self._entries: OrderedDict[str, tuple[float, AuthenticatedDevice]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()

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

    def known_unknown(self, key_hash: str) -> bool:
        """True when the database did not know this key hash less than `negative_ttl` ago."""
        looked_up = self._unknown.get(key_hash)
        if looked_up is None:
            return False
        if time.monotonic() - looked_up >= self.negative_ttl:
            del self._unknown[key_hash]
            return False
        return True

    def put_unknown(self, key_hash: str) -> None:
        """Remember a lookup that found nothing (a no-op when `negative_ttl` is 0)."""
        if self.negative_ttl <= 0:
            return
        self._unknown[key_hash] = time.monotonic()
        self._unknown.move_to_end(key_hash)
        while len(self._unknown) > self.max_size:
            self._unknown.popitem(last=False)


async def authenticate_device(
    *,
    session: AsyncSession,
    cache: DeviceKeyCache,
    api_key: str | None,
    failed_lookups: FailedLookupLimiter | None = None,
    client: str = "unknown",
) -> AuthenticatedDevice:
    """The active device owning `api_key`, or 401 (429 for a client over `failed_lookups`).

    The key may be the device's current one or, until `previous_key_expires_at`, the one an
    operator's rotation replaced (zero-downtime rotation: the fleet moves to the new key while
    the old one still works). A revoked device's keys are both refused.

    Only a key in neither cache costs a query; a client whose queries found nothing
    `failed_lookups.limit` times in the window gets 429 instead of another query, while keys
    already cached keep working for it. With Redis down that limit goes unchecked (the limiter
    logs it) and lookups go ahead."""
    if not api_key:
        raise UnauthorizedError("Send the device's API key in the X-Device-Key header.")
    key_hash = hash_api_key(api_key)
    device = cache.get(key_hash)
    if device is not None:
        return device
    if cache.known_unknown(key_hash):
        raise UnauthorizedError("Unknown or revoked device key.", code="invalid_device_key")
    if failed_lookups is not None:
        await failed_lookups.check(client)
    row = (
        await session.execute(
            select(col(Device.id), col(Device.owner_id)).where(
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
        cache.put_unknown(key_hash)
        if failed_lookups is not None:
            await failed_lookups.count(client)
        raise UnauthorizedError("Unknown or revoked device key.", code="invalid_device_key")
    device = AuthenticatedDevice(id=row.id, owner_id=row.owner_id)
    cache.put(key_hash, device)
    return device


class LastSeenThrottle:
    """When to write `devices.last_seen_at`: at most once per `interval` seconds per device, by
    this process.

    Every upload could write it, but each write locks the device row, which every concurrent
    upload of that device would then queue on. At most `max_size` devices are remembered.
    """

    def __init__(self, interval: float, max_size: int) -> None:
        self.interval = interval
        self.max_size = max_size
        self._written: dict[uuid.UUID, float] = {}

    def due(self, device_id: uuid.UUID) -> bool:
        """True (and noted as written now) when this process has not written the device's
        `last_seen_at` for `interval` seconds."""
        now = time.monotonic()
        last = self._written.get(device_id)
        if last is not None and now - last < self.interval:
            return False
        if len(self._written) >= self.max_size:
            self._written.clear()  # Worst case: one extra write per device.
        self._written[device_id] = now
        return True
