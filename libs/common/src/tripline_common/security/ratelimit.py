"""Rate limits in Redis: fixed windows shared by every replica, answered with 429 + Retry-After,
and reported to the client in the IETF RateLimit headers (`Quota`, `report_quotas`)."""

from __future__ import annotations

import hashlib
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tripline_common.platform.errors import RateLimitedError
from tripline_common.platform.settings import CommonSettings


@dataclass(frozen=True)
class RatePolicy:
    """A named limit whose quota and window are settings: `limit_setting` requests per
    `window_setting` seconds. The name is what the RateLimit headers call it."""

    name: str
    limit_setting: str
    window_setting: str

    def limit(self, settings: Any) -> int:
        return int(getattr(settings, self.limit_setting))

    def window(self, settings: Any) -> int:
        return int(getattr(settings, self.window_setting))


LOGIN_CLIENT = RatePolicy("login-client", "login_client_rate_limit", "login_rate_window_seconds")
LOGIN_ACCOUNT_CLIENT = RatePolicy(
    "login-account-client", "login_rate_limit", "login_rate_window_seconds"
)
LOGIN_ACCOUNT = RatePolicy("login-account", "login_account_rate_limit", "login_rate_window_seconds")
LOGIN_POLICIES = (LOGIN_CLIENT, LOGIN_ACCOUNT_CLIENT, LOGIN_ACCOUNT)
"""The limits of every login form (`admit_login_attempt`), in the order they are checked."""


@dataclass(frozen=True)
class Quota:
    """One policy as a request found it: `remaining` of `limit` per `window` seconds, the window
    ending in `reset` seconds."""

    policy: str
    limit: int
    window: int
    remaining: int
    reset: int

    def policy_item(self) -> str:
        """This policy as an item of the `RateLimit-Policy` field."""
        return f'"{self.policy}";q={self.limit};w={self.window}'

    def limit_item(self) -> str:
        """What is left, as an item of the `RateLimit` field."""
        return f'"{self.policy}";r={self.remaining};t={self.reset}'


# The quotas the current request met, by policy. Set by the web edge for each request, so any
# layer that checks a limit (a dependency, a service, the login check) reports it, and one
# place writes the headers, on success and on the 429 alike.
_quotas: ContextVar[dict[str, Quota] | None] = ContextVar("tripline_quotas", default=None)


def report_quotas() -> tuple[dict[str, Quota], Token[dict[str, Quota] | None]]:
    """Start collecting the quotas of the current request: the (live) collection, and the
    token that `stop_reporting_quotas` takes when the request ends."""
    collected: dict[str, Quota] = {}
    return collected, _quotas.set(collected)


def stop_reporting_quotas(token: Token[dict[str, Quota] | None]) -> None:
    """End the collection `report_quotas` started."""
    _quotas.reset(token)


def _report(
    policy: str, limit: int, window: int, count: int, reset: int, *, recount: bool = False
) -> None:
    collected = _quotas.get()
    if collected is None:
        return
    quota = Quota(policy, limit, window, max(0, limit - count), min(reset, window))
    known = collected.get(policy)
    # A policy applied to two keys (a client and an email): the tighter one is what binds.
    # `recount`: the same key counted again (an attempt given back), which replaces it.
    if known is None or recount or quota.remaining <= known.remaining:
        collected[policy] = quota


async def _hit(redis: Redis, key: str, *, window_seconds: int) -> tuple[str, int, int]:
    """Count one hit on `key` in the current window: (counter name, count, Retry-After)."""
    counter = _counter(key, window_seconds)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(counter)
        pipe.expire(counter, window_seconds + 1)
        count, _ = await pipe.execute()
    return counter, int(count), _retry_after(window_seconds)


async def enforce_rate_limit(
    redis: Redis, key: str, *, policy: str, limit: int, window_seconds: int
) -> None:
    """Count one hit on `key`; raise 429 with `Retry-After` when the window's limit is passed.
    The quota is reported under `policy` for the request's RateLimit headers.

    A fixed window (one counter per key and window, expiring with it) costs one round trip
    and is exact across replicas; its burst at window edges is at most 2 x limit.
    """
    _, count, retry_after = await _hit(redis, key, window_seconds=window_seconds)
    _report(policy, limit, window_seconds, count, retry_after)
    if count > limit:
        raise RateLimitedError(retry_after, "Too many attempts; try again later.")


@dataclass(frozen=True)
class LoginAttempt:
    """A password attempt let through by `admit_login_attempt`, counted as a failure unless
    `succeeded()` is awaited after the password proved right."""

    redis: Redis
    failure_counters: tuple[tuple[str, RatePolicy, int], ...]  # (counter, policy, limit)
    window_seconds: int

    async def succeeded(self) -> None:
        """Take this attempt back off the failure counters: right passwords do not count."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for counter, _, _ in self.failure_counters:
                pipe.decr(counter)
                # Should the window have ended meanwhile, the key still expires.
                pipe.expire(counter, self.window_seconds + 1)
            results = await pipe.execute()
        reset = _retry_after(self.window_seconds)
        for (_, policy, limit), count in zip(self.failure_counters, results[::2], strict=True):
            _report(policy.name, limit, self.window_seconds, int(count), reset, recount=True)


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
    keys = (
        f"login:client:{source}",
        f"login:account-client:{account}:{source}",
        f"login:account:{account}",
    )
    failure_counters: list[tuple[str, RatePolicy, int]] = []
    for position, (key, policy) in enumerate(zip(keys, LOGIN_POLICIES, strict=True)):
        limit = policy.limit(settings)
        counter, count, retry_after = await _hit(redis, key, window_seconds=window)
        _report(policy.name, limit, window, count, retry_after)
        if count > limit:
            raise RateLimitedError(retry_after, "Too many attempts; try again later.")
        if position > 0:
            failure_counters.append((counter, policy, limit))
    return LoginAttempt(redis, tuple(failure_counters), window)


async def count_hit(redis: Redis, key: str, *, policy: str, limit: int, window_seconds: int) -> int:
    """Count one hit on `key` in the current fixed window (a limit of `limit`, reported under
    `policy`); the window's count so far."""
    _, count, retry_after = await _hit(redis, key, window_seconds=window_seconds)
    _report(policy, limit, window_seconds, count, retry_after)
    return count


async def ensure_under_limit(
    redis: Redis, key: str, *, policy: str, limit: int, window_seconds: int, message: str
) -> None:
    """Raise 429 with `Retry-After` when `key` already has `limit` hits in the current window
    (counted by `count_hit`), without counting one: for limits on outcomes (failures) that are
    only known after the work the limit protects. Reported under `policy`."""
    raw = await redis.get(_counter(key, window_seconds))
    count = int(raw) if raw is not None else 0
    reset = _retry_after(window_seconds)
    _report(policy, limit, window_seconds, count, reset)
    if count >= limit:
        raise RateLimitedError(reset, message)


def _counter(key: str, window_seconds: int) -> str:
    return f"ratelimit:{key}:{int(time.time() // window_seconds)}"


def _retry_after(window_seconds: int) -> int:
    """Seconds until the current window ends (at least 1)."""
    now = time.time()
    window_end = (int(now // window_seconds) + 1) * window_seconds
    return max(1, int(window_end - now) + 1)
