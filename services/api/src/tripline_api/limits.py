"""Rate limits of the API's own endpoints: their policies, and the dependency a route takes to
apply them, which documents them on the route (429, `Retry-After`, the RateLimit headers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis

from tripline_api.settings import ApiSettings
from tripline_api.state import ApiSettingsDep, ApiState
from tripline_common.platform import RateLimitedError
from tripline_common.security import (
    LOGIN_POLICIES,
    LoginAttempt,
    RatePolicy,
    admit_login_attempt,
    enforce_rate_limit,
)
from tripline_common.web import RedisDep, client_address, raises, rate_limited

SIGNUP = RatePolicy("signup", "signup_rate_limit", "signup_rate_window_seconds")
SIGNUP_ALL = RatePolicy(
    "signup-all", "signup_global_rate_limit", "signup_global_rate_window_seconds"
)
PASSWORD_RESET = RatePolicy(
    "password-reset", "password_reset_rate_limit", "password_reset_rate_window_seconds"
)
PASSWORD_CHANGE = RatePolicy("password-change", "login_rate_limit", "login_rate_window_seconds")


@dataclass(frozen=True)
class Limiter:
    """The limits one route may apply, bound to its request. A policy the route did not
    declare is refused, so the route's documentation cannot miss a limit it applies."""

    request: Request
    redis: Redis
    settings: ApiSettings
    policies: tuple[RatePolicy, ...]
    label: str  # Its refusals in `tripline_api_rate_limit_rejections_total`.

    async def hit(self, policy: RatePolicy, key: str) -> None:
        """Count one hit on `key` under `policy`; 429 past its limit."""
        self._declared(policy)
        with self._counted():
            await enforce_rate_limit(
                self.redis,
                key,
                policy=policy.name,
                limit=policy.limit(self.settings),
                window_seconds=policy.window(self.settings),
            )

    async def admit_login(self, email: str) -> LoginAttempt:
        """Let one password attempt for `email` through (`admit_login_attempt`), or 429."""
        for policy in LOGIN_POLICIES:
            self._declared(policy)
        with self._counted():
            return await admit_login_attempt(
                self.redis, self.settings, client=client_address(self.request), email=email
            )

    def _declared(self, policy: RatePolicy) -> None:
        if policy not in self.policies:
            raise RuntimeError(f"rate limit {policy.name!r} is not declared by this route")

    @contextmanager
    def _counted(self) -> Iterator[None]:
        try:
            yield
        except RateLimitedError:
            ApiState.of(self.request.app).metrics.rate_limit_rejections.labels(self.label).inc()
            raise


def rate_limits(
    label: str, *policies: RatePolicy, what: str = "requests"
) -> Callable[..., Awaitable[Limiter]]:
    """A dependency giving a route its `Limiter` for `policies`; it documents the 429 and the
    RateLimit headers on every operation that takes it."""

    async def limiter(request: Request, redis: RedisDep, settings: ApiSettingsDep) -> Limiter:
        return Limiter(request, redis, settings, policies, label)

    return raises(rate_limited(*policies, what=what), limiter)


SIGNUP_LIMITS = rate_limits("signup", SIGNUP, SIGNUP_ALL, what="sign-ups")
LOGIN_LIMITS = rate_limits("login", *LOGIN_POLICIES, what="login attempts")
PASSWORD_RESET_LIMITS = rate_limits("password_reset", PASSWORD_RESET, what="reset requests")
PASSWORD_CHANGE_LIMITS = rate_limits("password_change", PASSWORD_CHANGE, what="attempts")
