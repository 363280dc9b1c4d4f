"""Read-through caches in Redis for expensive reads: get-or-compute with a TTL, and explicit
invalidation by the code that writes.

Each `ReadCache` holds one kind of value (a Pydantic model) per scope (e.g. per user). Writers
call `invalidate(scope)` inside their transaction, before it commits. That alone would leave a
race: a reader that takes its database snapshot between the invalidation and the commit would
store the old value again. Two small mechanisms close it:

- a generation counter per scope: `invalidate` bumps it and every stored value carries the
  generation it was computed under, so a value computed before a write is never served after it;
- a short write window: `invalidate` also marks the scope as being written for
  `write_window_seconds` (longer than any write transaction), and readers inside the window
  compute without storing, since their snapshot may predate the commit.

Redis being unavailable never fails a read (the value is computed) or a write (logged; a
stale value then lives at most `ttl_seconds`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import orjson
import structlog
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("tripline.cache")

M = TypeVar("M", bound=BaseModel)


class ReadCache(Generic[M]):
    """Values of `model`, cached per scope under `cache:<name>:<scope>`."""

    def __init__(
        self, name: str, model: type[M], *, ttl_seconds: int, write_window_seconds: int = 30
    ) -> None:
        self.name = name
        self.model = model
        self.ttl_seconds = ttl_seconds
        self.write_window_seconds = write_window_seconds

    def _keys(self, scope: str) -> tuple[str, str, str]:
        base = f"cache:{self.name}:{scope}"
        return base, f"{base}:generation", f"{base}:writing"

    async def get_or_compute(
        self, redis: Redis, scope: str, compute: Callable[[], Awaitable[M]]
    ) -> tuple[M, bool]:
        """The cached value for `scope`, or `compute()` stored for next time.

        Returns the value and whether it came from the cache. One Redis round trip on a hit.
        """
        value_key, generation_key, writing_key = self._keys(scope)
        try:
            stored, generation, writing = await redis.mget(value_key, generation_key, writing_key)
        except RedisError as exc:
            log.warning("cache_unavailable", cache=self.name, error=str(exc))
            return await compute(), False
        current = int(generation or 0)
        if stored is not None and writing is None:
            try:
                envelope = orjson.loads(stored)
                if envelope["generation"] == current:
                    return self.model.model_validate(envelope["value"]), True
            except (orjson.JSONDecodeError, KeyError, TypeError, ValidationError):
                log.warning("cache_entry_unreadable", cache=self.name)
        value = await compute()
        if writing is None:
            envelope_bytes = orjson.dumps(
                {"generation": current, "value": value.model_dump(mode="json")}
            )
            try:
                await redis.set(value_key, envelope_bytes, ex=self.ttl_seconds)
            except RedisError as exc:
                log.warning("cache_store_failed", cache=self.name, error=str(exc))
        return value, False

    async def invalidate(self, redis: Redis, scope: str) -> None:
        """Forget the value of `scope`; call it inside the writing transaction."""
        _, generation_key, writing_key = self._keys(scope)
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr(generation_key)
                # Outlives every value stored under older generations, so a counter that
                # expires (and restarts at 0) can never match an old value again.
                pipe.expire(generation_key, max(self.ttl_seconds * 2, 86_400))
                pipe.set(writing_key, b"1", ex=self.write_window_seconds)
                await pipe.execute()
        except RedisError as exc:
            log.warning("cache_invalidate_failed", cache=self.name, error=str(exc))
