"""Dependencies that authenticate a request and check roles: `CurrentUser`, `require_role`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from tripline_common.data.models import UserRole
from tripline_common.platform.errors import ForbiddenError, UnauthorizedError
from tripline_common.platform.sentry import set_user_id
from tripline_common.platform.settings import CommonSettings
from tripline_common.security.auth.service import Principal, resolve_principal
from tripline_common.security.auth.tokens import AccessClaims, decode_access_token
from tripline_common.web.deps import PgDep
from tripline_common.web.responses import RaiseSite, documented_error, raises
from tripline_common.web.state import ServiceState


class BearerTokenClaims(OAuth2PasswordBearer):
    """The OAuth2 bearer scheme (as documented in OpenAPI) that also verifies the token.

    One dependency instead of three (the scheme, the settings, the check): FastAPI resolves
    every dependency on every request, and on the hot reads that bookkeeping cost more than
    the check itself (docs/performance.md). A missing token is our 401 in the shared shape,
    not FastAPI's.
    """

    def __init__(self) -> None:
        super().__init__(
            tokenUrl="/v1/auth/token", scheme_name="OAuth2PasswordBearer", auto_error=False
        )

    async def __call__(self, request: Request) -> AccessClaims:  # type: ignore[override]
        token = await super().__call__(request)
        if not token:
            raise UnauthorizedError("Send an access token: `Authorization: Bearer <token>`.")
        state: ServiceState[CommonSettings] = request.app.state.service
        return decode_access_token(state.settings, token)


UNAUTHORIZED_SITE = RaiseSite(documented_error(401, "Missing, invalid or revoked token."))
"""What authenticating a bearer token answers."""

get_token_claims = raises(UNAUTHORIZED_SITE, BearerTokenClaims())
"""The verified claims of the request's bearer token (signature, expiry, audience)."""

TokenClaims = Annotated[AccessClaims, Depends(get_token_claims)]


async def get_current_user(claims: TokenClaims, pg: PgDep) -> Principal:
    """The user behind a valid token whose session is still live (one query)."""
    user = await resolve_principal(pg=pg, claims=claims)
    structlog.contextvars.bind_contextvars(user_id=str(user.id))
    set_user_id(user.id)
    return user


raises(UNAUTHORIZED_SITE, get_current_user)
CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_role(*roles: UserRole) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency allowing only users with one of `roles` (403 for others)."""
    allowed = frozenset(roles)
    names = ", ".join(f"`{role.value}`" for role in sorted(allowed))

    async def check_role(user: CurrentUser) -> Principal:
        if user.role not in allowed:
            raise ForbiddenError(
                "Your role does not allow this.",
                code="insufficient_role",
                details={"required": sorted(role.value for role in allowed)},
            )
        return user

    return raises(
        RaiseSite(documented_error(403, f"`insufficient_role`: only {names} may do this.")),
        check_role,
    )


OperatorUser = Annotated[Principal, Depends(require_role(UserRole.OPERATOR, UserRole.ADMIN))]
AdminUser = Annotated[Principal, Depends(require_role(UserRole.ADMIN))]
