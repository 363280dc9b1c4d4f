"""Jobs wait out a database or Redis outage through ARQ's `Retry`, instead of failing."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tripline_common.data import is_transient_db_error

log = structlog.get_logger("tripline.worker")

T = TypeVar("T")

# Waits before the 2nd, 3rd... run: 2, 4, 8, 16, then 30 s (about a minute in all with
# MAX_TRIES=5). A longer outage leaves the work pending in Postgres, where the sweepers find it.
MAX_DEFER_SECONDS = 30


def retry_when_unavailable(func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Turn a transient database or Redis failure into `arq.Retry` with exponential backoff.

    Any other exception fails the job as usual. Only for idempotent jobs (all of ours are).
    """

    @functools.wraps(func)
    async def wrapper(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> T:
        try:
            return await func(ctx, *args, **kwargs)
        except Retry:
            raise
        except Exception as exc:
            if not (
                is_transient_db_error(exc)
                or isinstance(exc, RedisConnectionError | RedisTimeoutError)
            ):
                raise
            defer = min(MAX_DEFER_SECONDS, 2 ** int(ctx.get("job_try") or 1))
            log.warning("job_deferred_by_outage", error_type=type(exc).__name__, retry_in=defer)
            raise Retry(defer=defer) from exc

    return wrapper
