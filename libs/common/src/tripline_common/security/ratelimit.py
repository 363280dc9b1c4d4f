"""Rate limits in Redis: fixed windows shared by every replica, answered with 429 + Retry-After."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from tripline_common.platform.errors import RateLimitedError
from tripline_common.platform.settings import CommonSettings


async def _hit(redis: Redis, key: str, *, window_seconds: int) -> tuple[str, int, int]:
    """Count one hit on `key` in the current window: (counter name, count, Retry-After)."""
    counter = _counter(key, window_seconds)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        count, _ = await pipe.execute()
    return counter, int(count), _retry_after(window_seconds)


async def enforce_rate_limit(redis: Redis, key: str, *, limit: int, window_seconds: int) -> None:
    """Count one hit on `key`; raise 429 with `Retry-After` when the window's limit is passed.

    A fixed window (one counter per key and window, expiring with it) costs one round trip
    and is exact across replicas; its burst at window edges is at most 2 x limit.
    """
    _, count, retry_after = await _hit(redis, key, window_seconds=window_seconds)
    if count > limit:
        raise RateLimitedError(retry_after, "Too many attempts; try again later.")


@dataclass(frozen=True)
class LoginAttempt:
    """A password attempt let through by `admit_login_attempt`, counted as a failure unless
    `succeeded()` is awaited after the password proved right."""

    redis: Redis
    failure_counters: tuple[str, ...]
    window_seconds: int

    async def succeeded(self) -> None:
        """Take this attempt back off the failure counters: right passwords do not count."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for counter in self.failure_counters:
                pipe.decr(counter)
                # Should the window have ended meanwhile, the key still expires.
                pipe.expire(counter, self.window_seconds + 1)
            await pipe.execute()


async def admit_login_attempt(
    redis: Redis, settings: CommonSettings, *, client: str | None, email: str
) -> LoginAttempt:
    """Let one password attempt through, or raise 429 with `Retry-After`; every login form
    (the API's token endpoint, the console's sign-in) asks here first.

    Three fixed-window limits, all `LOGIN_RATE_WINDOW_SECONDS` long and checked in this order:
    attempts from one client address for any email (`LOGIN_CLIENT_RATE_LIMIT`; every attempt
    costs a password hash, so right ones count too), failures for this account from this
    client (`LOGIN_RATE_LIMIT`), failures for this account from every client
    (`LOGIN_ACCOUNT_RATE_LIMIT`, well above the former, to slow a distributed guess). So a
    client that floods one account spends only its own budget for it: the owner, from another
    address, still logs in. An attempt refused by one limit is not counted by the later ones.
    Failures are counted up front and taken back by `LoginAttempt.succeeded()`, so concurrent
    guesses cannot slip past a limit before their failures are counted.
    """
    window = settings.login_rate_window_seconds
    source = client or "unknown"
    # Hashed: the key's length does not depend on what was typed, and no address is stored.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    limits = (
        (f"login:client:{source}", settings.login_client_rate_limit),
        (f"login:account-client:{account}:{source}", settings.login_rate_limit),
        (f"login:account:{account}", settings.login_account_rate_limit),
    )
    failure_counters: list[str] = []
    for position, (key, limit) in enumerate(limits):
        counter, count, retry_after = await _hit(redis, key, window_seconds=window)
        if count > limit:
            raise RateLimitedError(retry_after, "Too many attempts; try again later.")
        if position > 0:
            failure_counters.append(counter)
    return LoginAttempt(redis, tuple(failure_counters), window)


async def count_hit(redis: Redis, key: str, *, window_seconds: int) -> int:
    """Count one hit on `key` in the current fixed window; the window's count so far."""
    _, count, _ = await _hit(redis, key, window_seconds=window_seconds)
    return count


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
